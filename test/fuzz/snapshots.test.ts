// Fuzz: snapshots whose training state lies, resumed by train.
import { snapshotCases } from './cases-snapshot.js';
import { fuzzFamily } from './fixtures.js';

fuzzFamily('hostile snapshots', snapshotCases(), { snapshot: true });
