// The run report page: one self-contained HTML file (inline CSS and SVG, no scripts, fonts or network), so it
// can be mailed, archived or opened from a bucket and always shows the same thing.
import * as os from 'node:os';
import { formatCount, formatDuration } from '../util/format.js';
import { downsample, extentOf, formatTicks, makeScale, niceTicks, padExtent, type Point } from './chart-scale.js';
import type { ParsedMetrics, RunSummary, SampleRecord } from './metrics-reader.js';
import { CHART_FONT_FAMILY } from './png.js';

/** Facts about the machine that generated the report (not necessarily the one that trained). */
export interface ReportEnvironment {
  node: string;
  os: string;
  arch: string;
  cpuModel: string;
  cpus: number;
  memoryGiB: number;
}

export function captureEnvironment(): ReportEnvironment {
  const cpus = os.cpus();
  return {
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    cpuModel: cpus[0]?.model.trim() || 'unknown',
    cpus: cpus.length,
    memoryGiB: os.totalmem() / 2 ** 30,
  };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

// ---------------------------------------------------------------------------------------------------- charts

export interface ChartSeries {
  /** CSS class on the drawn elements (tests and styles find series by it). */
  cls: string;
  label: string;
  color: string;
  kind: 'line' | 'dots';
  points: Point[];
  /** How to print a y value in the dots' hover titles. */
  format?: (y: number) => string;
}

/** A horizontal reference line across the plot (a baseline loss), labelled at its right end. */
export interface RefLine {
  cls: string;
  label: string;
  y: number;
  color: string;
}

export interface ChartSpec {
  id: string;
  /** Reference lines; the y axis is stretched to show them. */
  refLines?: RefLine[];
  title: string;
  yLabel: string;
  series: ChartSeries[];
  width?: number;
  height?: number;
}

/** Most points one polyline keeps; longer series are reduced keeping each bucket's min and max. */
export const MAX_LINE_POINTS = 3000;

const r2 = (v: number): string => (Math.round(v * 100) / 100).toString();

/** An inline SVG line/dot chart with gridlines, ticks and a legend. */
export function svgChart(spec: ChartSpec): string {
  const W = spec.width ?? 760;
  const H = spec.height ?? 300;
  const left = 64;
  const right = W - 28; // room for half of a six-digit step label past the last tick
  const top = 30; // room for the legend above the plot, where it never covers data
  const bottom = H - 40;
  const all = spec.series.flatMap((s) => s.points);
  const xs = extentOf(all.map((p) => p.x));
  const refs = (spec.refLines ?? []).filter((r) => Number.isFinite(r.y));
  const ys = extentOf([...all.map((p) => p.y), ...(all.length ? refs.map((r) => r.y) : [])]);
  const parts: string[] = [];
  // The font-family attribute is for rasterisers (png.ts gives resvg exactly that font); on the page the
  // stylesheet's font-family wins over a presentation attribute, so the charts use the page's font.
  parts.push(`<svg id="${spec.id}" class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(spec.title)}" font-family="${CHART_FONT_FAMILY}, sans-serif" xmlns="http://www.w3.org/2000/svg">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  // The title, top left, on the legend's line: the PNG has no page heading around it.
  parts.push(`<text class="title" x="${left}" y="16" font-size="13" font-weight="bold" fill="#222">${escapeHtml(spec.title)}</text>`);
  if (!xs || !ys) {
    parts.push(`<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">no data logged</text></svg>`);
    return parts.join('');
  }
  const xDomain = xs.min === xs.max ? padExtent(xs) : xs;
  const yDomain = padExtent(ys);
  const sx = makeScale(xDomain, [left, right]);
  const sy = makeScale(yDomain, [bottom, top]);
  const xt = niceTicks(xDomain.min, xDomain.max, 8);
  const yt = niceTicks(yDomain.min, yDomain.max, 5);
  parts.push('<g class="grid" stroke="#e5e5e5" stroke-width="1">');
  for (const t of xt.ticks) parts.push(`<line x1="${r2(sx(t))}" y1="${top}" x2="${r2(sx(t))}" y2="${bottom}"/>`);
  for (const t of yt.ticks) parts.push(`<line x1="${left}" y1="${r2(sy(t))}" x2="${right}" y2="${r2(sy(t))}"/>`);
  parts.push('</g>');
  parts.push(`<g class="axes" stroke="#333" stroke-width="1"><line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}"/><line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}"/></g>`);
  parts.push('<g class="ticks" font-size="11" fill="#333">');
  const xl = formatTicks(xt.ticks, xt.step);
  const yl = formatTicks(yt.ticks, yt.step);
  xt.ticks.forEach((t, i) => parts.push(`<text class="xtick" x="${r2(sx(t))}" y="${bottom + 15}" text-anchor="middle">${xl[i]}</text>`));
  yt.ticks.forEach((t, i) => parts.push(`<text class="ytick" x="${left - 6}" y="${r2(sy(t) + 4)}" text-anchor="end">${yl[i]}</text>`));
  parts.push('</g>');
  parts.push(`<text class="xlabel" x="${(left + right) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">step</text>`);
  parts.push(`<text class="ylabel" transform="translate(14 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeHtml(spec.yLabel)}</text>`);

  for (const r of refs) {
    const y = r2(sy(r.y));
    parts.push(`<g class="ref ${r.cls}"><line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="${r.color}" stroke-width="1.2" stroke-dasharray="6 4"/>`);
    // Labelled at the right end: a falling loss curve is furthest below its baselines there.
    parts.push(`<text x="${right - 6}" y="${r2(sy(r.y) - 4)}" text-anchor="end" font-size="10.5" fill="${r.color}">${escapeHtml(r.label)}</text></g>`);
  }
  for (const s of spec.series) {
    if (s.kind === 'line') {
      // A non-finite value (a diverged step) breaks the line rather than being drawn as zero or skipped over.
      const drawn = downsample(s.points, MAX_LINE_POINTS);
      const segments: Point[][] = [[]];
      for (const p of drawn) {
        if (Number.isFinite(p.y)) segments.at(-1)!.push(p);
        else if (segments.at(-1)!.length) segments.push([]);
      }
      for (const seg of segments.filter((g) => g.length)) {
        const pts = seg.map((p) => `${r2(sx(p.x))},${r2(sy(p.y))}`).join(' ');
        parts.push(`<polyline class="series ${s.cls}" data-points="${seg.length}" fill="none" stroke="${s.color}" stroke-width="1.6" stroke-linejoin="round" points="${pts}"/>`);
      }
    } else {
      const fmt = s.format ?? ((y: number) => y.toPrecision(4));
      parts.push(`<g class="series ${s.cls}" fill="${s.color}">`);
      for (const p of s.points.filter((q) => Number.isFinite(q.y))) {
        parts.push(`<circle cx="${r2(sx(p.x))}" cy="${r2(sy(p.y))}" r="3.5"><title>step ${p.x}: ${escapeHtml(s.label)} ${fmt(p.y)}</title></circle>`);
      }
      parts.push('</g>');
    }
  }
  // Legend along the top right, above the plot.
  let lx = right;
  const legend: string[] = [];
  for (const s of [...spec.series].reverse()) {
    const w = s.label.length * 6.5 + 26;
    lx -= w;
    const mark =
      s.kind === 'line'
        ? `<line x1="${r2(lx)}" y1="12" x2="${r2(lx + 16)}" y2="12" stroke="${s.color}" stroke-width="2"/>`
        : `<circle cx="${r2(lx + 8)}" cy="12" r="3.5" fill="${s.color}"/>`;
    legend.push(`${mark}<text x="${r2(lx + 20)}" y="16" font-size="11">${escapeHtml(s.label)}</text>`);
  }
  parts.push(`<g class="legend">${legend.join('')}</g>`);
  parts.push('</svg>');
  return parts.join('');
}

// ---------------------------------------------------------------------------------------------------- page

/** Flattens a nested config into dotted keys, in the order the config lists them. */
export function flattenConfig(obj: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) out.push(...flattenConfig(v as Record<string, unknown>, key));
    else out.push([key, v]);
  }
  return out;
}

const fmtLoss = (v: number | null): string => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(4));
const fmtNum = (v: number | null, f: (x: number) => string = String): string => (v === null || !Number.isFinite(v) ? '—' : f(v));

function figureRow(key: string, label: string, value: string, note = ''): string {
  return `<tr><th>${escapeHtml(label)}</th><td data-figure="${key}">${escapeHtml(value)}</td><td class="note">${escapeHtml(note)}</td></tr>`;
}

export interface HtmlOptions {
  /** Shown in the heading: usually the run directory. */
  title: string;
  generatedAt?: Date;
  /**
   * Seconds after which the browser reloads the page, while the run has no end record; written only by the
   * live writers (the trainer at each evaluation, report --watch), so a finished or one-off report never reloads.
   */
  refreshSeconds?: number;
  /** The data set's baseline losses, drawn on the loss chart and compared with the best val loss. */
  baselines?: Baselines | null;
}

/** Reference losses of the data set (written by the demo as <out_dir>/baselines.json, see data/baselines.ts). */
export interface Baselines {
  uniform: number;
  unigram: number;
}

/** The loss chart: the page's first chart, and loss.png (write-report.ts rasterises this very SVG). */
export function lossChartSvg(m: ParsedMetrics, baselines: Baselines | null = null): string {
  return svgChart({
    id: 'chart-loss',
    title: 'training and validation loss',
    refLines: baselines
      ? [
          { cls: 'baseline-uniform', label: `uniform baseline ${baselines.uniform.toFixed(2)} (untrained model)`, y: baselines.uniform, color: '#7f7f7f' },
          { cls: 'baseline-unigram', label: `unigram baseline ${baselines.unigram.toFixed(2)} (token frequencies, no context)`, y: baselines.unigram, color: '#bcbd22' },
        ]
      : [],
    yLabel: 'loss',
    series: [
      { cls: 'train-loss', label: 'train loss (per step)', color: '#1f77b4', kind: 'line', points: m.train.map((r) => ({ x: r.iter, y: r.loss })) },
      { cls: 'eval-train-loss', label: 'train loss (eval)', color: '#2ca02c', kind: 'dots', points: m.evals.map((e) => ({ x: e.iter, y: e.train_loss })), format: (y) => y.toFixed(4) },
      { cls: 'val-loss', label: 'val loss (eval)', color: '#d62728', kind: 'dots', points: m.evals.map((e) => ({ x: e.iter, y: e.val_loss })), format: (y) => y.toFixed(4) },
    ],
  });
}

function samplesSection(samples: readonly SampleRecord[]): string {
  if (samples.length === 0) {
    return '<p class="sub" id="no-samples">No samples recorded for this run. <code>nanogpt sample --ckpt_path &lt;out_dir&gt; --record</code> adds the text it generates here.</p>';
  }
  return samples
    .map((r, i) => {
      const st = r.settings;
      const how = [
        `${r.texts.length} sample${r.texts.length === 1 ? '' : 's'}`,
        r.iter !== null ? `checkpoint at step ${r.iter}` : '',
        r.label ? r.label : '',
        `temperature ${st.temperature ?? '—'}`,
        `top_k ${st.top_k ?? '—'}`,
        `seed ${st.seed ?? '—'}`,
        `${st.max_new_tokens ?? '—'} new tokens at most`,
      ].filter(Boolean);
      const texts = r.texts.map((t) => `<pre class="sample">${escapeHtml(t)}</pre>`).join('\n');
      return `<div class="samples" id="samples-${i + 1}"><p class="sub">${escapeHtml(r.time)} · ${escapeHtml(how.join(' · '))} · prompt <code>${escapeHtml(JSON.stringify(r.prompt))}</code></p>\n${texts}</div>`;
    })
    .join('\n');
}

export function renderHtml(m: ParsedMetrics, s: RunSummary, env: ReportEnvironment, opts: HtmlOptions): string {
  const generated = (opts.generatedAt ?? new Date()).toISOString();
  const lossChart = lossChartSvg(m, opts.baselines ?? null);
  // One line per training step, in a small chart of its own.
  const stepChart = (id: string, title: string, yLabel: string, cls: string, label: string, color: string, y: (r: (typeof m.train)[number]) => number): string =>
    svgChart({ id, title, yLabel, series: [{ cls, label, color, kind: 'line', points: m.train.map((r) => ({ x: r.iter, y: y(r) })) }], height: 220 });
  const gradChart = stepChart('chart-grad-norm', 'gradient norm', 'grad norm', 'grad-norm', 'global grad norm (before clipping)', '#8c564b', (r) => r.grad_norm);
  const lrChart = stepChart('chart-lr', 'learning rate', 'learning rate', 'lr', 'learning rate', '#9467bd', (r) => r.lr);
  const tpsChart = stepChart('chart-tokens', 'tokens per second', 'tokens/s', 'tokens-per-s', 'tokens/s (global)', '#ff7f0e', (r) => r.tokens_per_s);

  const lastEval = s.lastEval;
  const progress = s.maxIters !== null ? `${s.iter} / ${s.maxIters}` : String(s.iter);
  const figures = [
    figureRow('status', 'status', s.status, s.statusText),
    figureRow('iterations', 'iterations', progress),
    figureRow('best-val-loss', 'best val loss', fmtLoss(s.bestValLoss), s.bestValIter !== null ? `at step ${s.bestValIter}` : ''),
    ...(opts.baselines && s.bestValLoss !== null
      ? [
          figureRow(
            'vs-unigram',
            'best val loss vs unigram',
            `${s.bestValLoss < opts.baselines.unigram ? 'beats' : 'does not beat'} unigram by ${Math.abs(opts.baselines.unigram - s.bestValLoss).toFixed(2)} nats`,
            `unigram ${opts.baselines.unigram.toFixed(2)}, uniform ${opts.baselines.uniform.toFixed(2)} (baselines.json)`,
          ),
        ]
      : []),
    figureRow('last-val-loss', 'last val loss', fmtLoss(lastEval?.val_loss ?? null), lastEval ? `eval at step ${lastEval.iter}` : 'no evaluation logged'),
    figureRow('last-eval-train-loss', 'last train loss (eval)', fmtLoss(lastEval?.train_loss ?? null), lastEval ? `eval at step ${lastEval.iter}` : ''),
    figureRow('last-train-loss', 'last train loss (step)', fmtLoss(s.lastTrainLoss), s.lastTrainIter !== null ? `step ${s.lastTrainIter}` : 'no step logged'),
    figureRow('tokens', 'tokens trained', fmtNum(s.tokens, (v) => `${formatCount(v)} (${v})`)),
    figureRow('wall-time', 'wall time', formatDuration(s.wallMs), s.sessions > 1 ? `sum of ${s.sessions} sessions` : ''),
    figureRow('mean-tokens-per-s', 'mean tokens/s', fmtNum(s.meanTokensPerS, (v) => formatCount(Math.round(v))), 'mean over logged steps, all ranks together'),
    ...(s.meanMfu !== null ? [figureRow('mean-mfu', 'mean MFU', `${(s.meanMfu * 100).toFixed(1)}%`, 'against trainer_config.peak_flops')] : []),
  ].join('\n');

  const runEnv = [
    figureRow('world', 'processes (world size)', fmtNum(s.world)),
    figureRow('threads', 'threads per process', fmtNum(s.threads)),
    figureRow('params', 'parameters', fmtNum(s.params, (v) => `${(v / 1e6).toFixed(2)}M (${v})`)),
    figureRow('tokens-per-step', 'tokens per optimizer step', fmtNum(s.tokensPerStep)),
    figureRow('started', 'started', s.startedAt ?? '—'),
    figureRow('last-record', 'last record', s.endedAt ?? '—'),
  ].join('\n');
  const reportEnv = [
    figureRow('node', 'Node.js', env.node),
    figureRow('os', 'OS', `${env.os} (${env.arch})`),
    figureRow('cpu', 'CPU', `${env.cpuModel} × ${env.cpus}`),
    figureRow('memory', 'memory', `${env.memoryGiB.toFixed(1)} GiB`),
  ].join('\n');

  const sessions = m.sessions
    .map((x, i) => {
      const end = x.end ? (x.end.interrupted ? `interrupted at ${x.end.iter}` : `ended at ${x.end.iter}`) : 'no end record';
      return `<tr><td>${i + 1}</td><td>${escapeHtml(x.start.time)}</td><td>${x.start.resumed_at === null ? 'fresh' : `resumed at ${x.start.resumed_at}`}</td><td>${fmtNum(x.start.world)}</td><td>${fmtNum(x.start.threads)}</td><td>${formatDuration(x.ms)}</td><td>${end}</td></tr>`;
    })
    .join('\n');

  const configRows = flattenConfig(s.config)
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v === null ? 'null' : typeof v === 'string' ? v : JSON.stringify(v))}</td></tr>`)
    .join('\n');

  const refresh = opts.refreshSeconds !== undefined && s.status === 'incomplete' ? Math.max(1, Math.round(opts.refreshSeconds)) : 0;
  const warnings: string[] = [];
  if (m.malformed) {
    warnings.push(`${m.malformed} malformed line(s) in metrics.jsonl were skipped: ${m.malformedNotes.join('; ')}${m.malformed > m.malformedNotes.length ? '; …' : ''}`);
  }
  if (m.superseded) warnings.push(`${m.superseded} record(s) from before a resume were replaced by the resumed session's records for the same steps.`);
  if (m.train.length === 0) warnings.push('No training step was logged yet.');
  if (m.evals.length === 0) warnings.push('No evaluation was logged: there is no val loss to show.');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nanogpt-ts report">${refresh ? `\n<meta http-equiv="refresh" content="${refresh}">` : ''}
<title>nanogpt run report — ${escapeHtml(opts.title)}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 820px; padding: 0 16px; color: #222; }
  h1 { font-size: 1.4em; margin-bottom: 0.2em; }
  h2 { font-size: 1.1em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
  .sub { color: #666; font-size: 0.9em; }
  table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0; }
  th, td { text-align: left; padding: 3px 12px 3px 0; vertical-align: top; }
  th { font-weight: 600; }
  td.note { color: #666; }
  .status-completed { color: #2a7a2a; } .status-interrupted, .status-incomplete { color: #a65e00; }
  .warnings { background: #fff6e0; border: 1px solid #f0d290; padding: 8px 12px; font-size: 0.9em; }
  svg.chart { max-width: 100%; height: auto; font-family: inherit; display: block; margin: 8px 0; }
  pre.sample { white-space: pre-wrap; background: #f6f6f6; border-left: 3px solid #bbb; padding: 6px 10px; font-size: 0.9em; }
  table.config td, table.config th { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.95em; }
</style>
</head>
<body>
<h1>nanogpt run report</h1>
<p class="sub">Run directory <code>${escapeHtml(opts.title)}</code> · <span class="status-${s.status}" id="status">${escapeHtml(s.statusText)}</span> · generated ${generated} from metrics.jsonl (${m.records} records)${refresh ? ` · <span id="live">reloads every ${refresh} s while the run goes</span>` : ''}</p>
${warnings.length ? `<div class="warnings" id="warnings">${warnings.map((w) => `<p>${escapeHtml(w)}</p>`).join('')}</div>` : ''}
<h2>Final figures</h2>
<table id="figures">
${figures}
</table>
<h2>Loss</h2>
${lossChart}
<p class="sub">Train loss of each logged optimizer step (the mean over its micro-batches) as a line; at each evaluation, the mean loss over eval_iters batches of each split as dots.</p>
<h2>Gradient norm</h2>
${gradChart}
<p class="sub">The global L2 norm of the gradients of each logged step, before clipping to trainer_config.grad_clip: spikes here come before loss spikes.</p>
<h2>Learning rate</h2>
${lrChart}
<h2>Throughput</h2>
${tpsChart}
<p class="sub">Tokens per second of each logged step, counted over all ranks (tokens per step ÷ step time).</p>
<h2>Samples</h2>
${samplesSection(m.samples)}
<h2>Environment</h2>
<h3>From the run (metrics.jsonl, latest session)</h3>
<table id="env-run">
${runEnv}
</table>
<table id="sessions">
<tr><th>session</th><th>started</th><th>kind</th><th>world</th><th>threads</th><th>ran</th><th>end</th></tr>
${sessions}
</table>
<h3>Captured when this report was generated (may differ from the training machines)</h3>
<table id="env-report">
${reportEnv}
</table>
<h2>Configuration</h2>
${configRows ? `<table class="config" id="config">\n${configRows}\n</table>` : '<p>No configuration recorded (no start record).</p>'}
</body>
</html>
`;
}
