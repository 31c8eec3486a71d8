// Fuzz: training settings that can only be wrong, and config files that are not config files.
import { configCases } from './cases-config.js';
import { fuzzFamily } from './fixtures.js';

fuzzFamily('hostile configs', configCases());
