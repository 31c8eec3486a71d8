// Fuzz: token files, text sources, sampling flags and paths that can only be wrong.
import { pathCases, sampleCases, textCases, tokenCases } from './cases-data.js';
import { fuzzFamily } from './fixtures.js';

fuzzFamily('hostile token files, text sources, sampling flags and paths', [...tokenCases(), ...textCases(), ...sampleCases(), ...pathCases()]);
