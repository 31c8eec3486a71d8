export { ProcessGroup, CollectiveError, RendezvousError, localAddressToward, type ProcessGroupOptions, type ReduceOp } from './process-group.js';
