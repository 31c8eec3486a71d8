export { ProcessGroup, CollectiveError, RendezvousError, splitTimeout, type ProcessGroupOptions, type ReduceOp } from './process-group.js';
export { chooseAddress, findLocalAddress, type AddressFacts, type ChosenAddress } from './address.js';
export { type JobIdentity } from './rendezvous.js';
