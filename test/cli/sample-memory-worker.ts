// Child process for sample-memory.test.ts: runs the `sample` command in-process (so its own generation loops run)
// and records, after each sample, the RSS and the number of live native tensors. Samples are counted from the
// separator lines `sample` writes to stdout, which this process swallows. One JSON line on stderr at the end.
// Usage: node sample-memory-worker.js <sample flags...>
import { SAMPLE_SEPARATOR, sampleCommand } from '../../src/cli/sample.js';
import * as torch from '../../src/torch/index.js';

const marks: { rss: number; tensors: number }[] = [];
process.stdout.write = ((chunk: string | Uint8Array): boolean => {
  if (typeof chunk === 'string' && chunk.endsWith(`\n${SAMPLE_SEPARATOR}\n`)) marks.push({ rss: process.memoryUsage().rss, tensors: torch.memory().tensors });
  return true;
}) as typeof process.stdout.write;

const code = await sampleCommand.run(process.argv.slice(2));
process.stderr.write(`\nMARKS ${JSON.stringify({ code, marks })}\n`);
