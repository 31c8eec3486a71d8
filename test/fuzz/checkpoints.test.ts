// Fuzz: checkpoints that lie, through sample, export and train --init_from.
import { checkpointCases } from './cases-checkpoint.js';
import { fuzzFamily } from './fixtures.js';

fuzzFamily('hostile checkpoints', checkpointCases());
