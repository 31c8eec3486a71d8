// Fuzz: token files, text sources and sampling flags that can only be wrong.
import { sampleCases, textCases, tokenCases } from './cases-data.js';
import { fuzzFamily } from './fixtures.js';

fuzzFamily('hostile token files, text sources and sampling flags', [...tokenCases(), ...textCases(), ...sampleCases()]);
