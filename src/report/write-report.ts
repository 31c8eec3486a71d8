// Builds <out_dir>/report.html and <out_dir>/loss.png from <out_dir>/metrics.jsonl. Called by the trainer at each
// evaluation and at the end of a run, and by `nanogpt report`. Loads no libtorch, so it also works where libtorch
// is not installed (loss.png needs the resvg binary from npm and a font file, see png.ts).
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeBufferAtomic, writeBufferAtomicSync } from '../io/atomic.js';
import { readBoundedFile, readBoundedFileSync, READ_LIMITS } from '../io/bounded-read.js';
import { isUserError, UserError } from '../util/errors.js';
import { captureEnvironment, lossChartSvg, renderHtml, type Baselines } from './html.js';
import { parseMetrics, summarise } from './metrics-reader.js';
import { svgToPng } from './png.js';

export interface ReportResult {
  html: string;
  png: string;
  /** Lines of metrics.jsonl that were skipped as malformed (the report notes them too). */
  malformed: number;
  /** Whether the run had an end record when the report was drawn (report --watch stops then). */
  ended: boolean;
}

export interface ReportOptions {
  /** Make report.html reload itself every this many seconds while the run has no end record (see HtmlOptions). */
  refreshSeconds?: number;
  /** false: write report.html only, leaving loss.png as it is (the trainer's cheap per-evaluation redraw). */
  png?: boolean;
}

export const METRICS_FILE = 'metrics.jsonl';
export const REPORT_HTML = 'report.html';
export const REPORT_PNG = 'loss.png';
/** Optional: the data set's baseline losses (written by nanogpt demo), drawn on the loss chart. */
export const BASELINES_FILE = 'baselines.json';

/** <outDir>/baselines.json when it is there and well-formed; anything else means no baselines (never an error). */
function readBaselines(outDir: string): Baselines | null {
  try {
    const o = JSON.parse(readBoundedFileSync(path.join(outDir, BASELINES_FILE), 64 * 1024, 'baselines file').toString('utf8')) as Record<string, unknown>;
    return typeof o.uniform === 'number' && typeof o.unigram === 'number' && Number.isFinite(o.uniform) && Number.isFinite(o.unigram) ? { uniform: o.uniform, unigram: o.unigram } : null;
  } catch {
    return null;
  }
}

function missingMetrics(outDir: string, dirExists: boolean): UserError {
  return new UserError(
    dirExists ? `no ${METRICS_FILE} in ${outDir}` : `run directory ${outDir} does not exist`,
    `train first (nanogpt train writes ${METRICS_FILE} into its out_dir), or pass the out_dir of a training run`,
  );
}

/** The two files' contents from the text of a metrics.jsonl. */
function render(outDir: string, text: string, opts: ReportOptions): { html: string; png: () => Buffer; malformed: number; ended: boolean } {
  const metricsPath = path.join(outDir, METRICS_FILE);
  const parsed = parseMetrics(text);
  if (parsed.records === 0) {
    throw new UserError(
      `${metricsPath} holds no metrics record${parsed.malformed ? ` (${parsed.malformed} malformed line(s), e.g. ${parsed.malformedNotes[0]})` : ' (it is empty)'}`,
      'wait until training has logged a step, or pass the out_dir of another run',
    );
  }
  const summary = summarise(parsed);
  const baselines = readBaselines(outDir);
  const html = renderHtml(parsed, summary, captureEnvironment(), { title: outDir, refreshSeconds: opts.refreshSeconds, baselines });
  return { html, png: () => svgToPng(lossChartSvg(parsed, baselines)), malformed: parsed.malformed, ended: summary.status !== 'incomplete' };
}

/** report.html is written before loss.png: when the PNG cannot be drawn (no font), the page is still there. */
function drawPng(htmlPath: string, png: () => Buffer): Buffer {
  try {
    return png();
  } catch (err) {
    if (isUserError(err)) throw new UserError(`wrote ${htmlPath}, but not ${REPORT_PNG}: ${err.problem}`, err.fix);
    throw err;
  }
}

/**
 * Reads `<outDir>/metrics.jsonl` and writes `report.html` and `loss.png` beside it, each atomically (a reader
 * never sees half a file). Throws UserError when there is no metrics file or it holds no valid record.
 */
export async function writeReport(outDir: string, opts: ReportOptions = {}): Promise<ReportResult> {
  const metricsPath = path.join(outDir, METRICS_FILE);
  let text: string;
  try {
    text = (await readBoundedFile(metricsPath, READ_LIMITS.metrics, 'metrics file')).toString('utf8');
  } catch (err) {
    if (isUserError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw missingMetrics(outDir, await fs.stat(outDir).then((st) => st.isDirectory(), () => false));
    throw err;
  }
  const r = render(outDir, text, opts);
  const htmlPath = path.join(outDir, REPORT_HTML);
  const pngPath = path.join(outDir, REPORT_PNG);
  await writeBufferAtomic(htmlPath, r.html);
  if (opts.png !== false) await writeBufferAtomic(pngPath, drawPng(htmlPath, r.png));
  return { html: htmlPath, png: pngPath, malformed: r.malformed, ended: r.ended };
}

/**
 * writeReport without yielding to the event loop, for the trainer's rewrite at each evaluation: it runs between
 * two steps, and nothing else may interleave with it (a final report must never be overtaken by an older one).
 */
export function writeReportSync(outDir: string, opts: ReportOptions = {}): ReportResult {
  const metricsPath = path.join(outDir, METRICS_FILE);
  let text: string;
  try {
    text = readBoundedFileSync(metricsPath, READ_LIMITS.metrics, 'metrics file').toString('utf8');
  } catch (err) {
    if (isUserError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw missingMetrics(outDir, existsSync(outDir));
    throw err;
  }
  const r = render(outDir, text, opts);
  const htmlPath = path.join(outDir, REPORT_HTML);
  const pngPath = path.join(outDir, REPORT_PNG);
  writeBufferAtomicSync(htmlPath, r.html);
  if (opts.png !== false) writeBufferAtomicSync(pngPath, drawPng(htmlPath, r.png));
  return { html: htmlPath, png: pngPath, malformed: r.malformed, ended: r.ended };
}
