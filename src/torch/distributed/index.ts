export { ProcessGroup, CollectiveError, localAddressToward, type ProcessGroupOptions, type ReduceOp } from './process-group.js';
