// Fuzz: `nanogpt serve` started with flags and model sources that can only be wrong.
import { serveCases } from './cases-serve.js';
import { fuzzFamily } from './fixtures.js';

fuzzFamily('hostile serve start-ups', serveCases());
