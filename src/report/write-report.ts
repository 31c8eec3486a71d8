// Builds <out_dir>/report.html and <out_dir>/loss.png from <out_dir>/metrics.jsonl. Called by the trainer at the
// end of a run and by `nanogpt report`. Loads no native code, so it also works where libtorch is not installed.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeBufferAtomic } from '../io/atomic.js';
import { readBoundedFile, READ_LIMITS } from '../io/bounded-read.js';
import { isUserError, UserError } from '../util/errors.js';
import { captureEnvironment, renderHtml } from './html.js';
import { parseMetrics, summarise } from './metrics-reader.js';
import { lossChartPng } from './png.js';

export interface ReportResult {
  html: string;
  png: string;
  /** Lines of metrics.jsonl that were skipped as malformed (the report notes them too). */
  malformed: number;
}

export const METRICS_FILE = 'metrics.jsonl';
export const REPORT_HTML = 'report.html';
export const REPORT_PNG = 'loss.png';

/**
 * Reads `<outDir>/metrics.jsonl` and writes `report.html` and `loss.png` beside it, each atomically (a reader
 * never sees half a file). Throws UserError when there is no metrics file or it holds no valid record.
 */
export async function writeReport(outDir: string): Promise<ReportResult> {
  const metricsPath = path.join(outDir, METRICS_FILE);
  let text: string;
  try {
    text = (await readBoundedFile(metricsPath, READ_LIMITS.metrics, 'metrics file')).toString('utf8');
  } catch (err) {
    if (isUserError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const dirExists = await fs.stat(outDir).then((st) => st.isDirectory(), () => false);
      throw new UserError(
        dirExists ? `no ${METRICS_FILE} in ${outDir}` : `run directory ${outDir} does not exist`,
        `train first (nanogpt train writes ${METRICS_FILE} into its out_dir), or pass the out_dir of a training run`,
      );
    }
    throw err;
  }
  const parsed = parseMetrics(text);
  if (parsed.records === 0) {
    throw new UserError(
      `${metricsPath} holds no metrics record${parsed.malformed ? ` (${parsed.malformed} malformed line(s), e.g. ${parsed.malformedNotes[0]})` : ' (it is empty)'}`,
      'wait until training has logged a step, or pass the out_dir of another run',
    );
  }
  const summary = summarise(parsed);
  const html = renderHtml(parsed, summary, captureEnvironment(), { title: outDir });
  const htmlPath = path.join(outDir, REPORT_HTML);
  const pngPath = path.join(outDir, REPORT_PNG);
  await writeBufferAtomic(pngPath, lossChartPng(parsed));
  await writeBufferAtomic(htmlPath, html);
  return { html: htmlPath, png: pngPath, malformed: parsed.malformed };
}
