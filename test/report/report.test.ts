import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as zlib from 'node:zlib';
import { after, before, test } from 'node:test';
import { downsample, formatTicks, niceTicks } from '../../src/report/chart-scale.js';
import { parseMetrics, summarise } from '../../src/report/metrics-reader.js';
import { lossChartSvg } from '../../src/report/html.js';
import { svgToPng } from '../../src/report/png.js';
import { writeReport } from '../../src/report/write-report.js';

const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));
let dir: string;

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-report-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------- synthetic runs

const CONFIG = {
  data_dir: 'data/shakespeare',
  block_size: 64,
  optimizer_config: { learning_rate: 6e-4, weight_decay: 0.1 },
  trainer_config: { max_iters: 40, eval_interval: 10, log_interval: 1, batch_size: 4 },
  model: { preset: 'gpt2-tiny', dropout: 0, bias: true },
  out_dir: 'out/<test>',
  distributed: { main_process_ip: null, main_process_port: 0 },
};

class RunWriter {
  lines: string[] = [];
  private t = Date.parse('2024-05-01T12:00:00Z');
  private time(): string {
    this.t += 1000;
    return new Date(this.t).toISOString();
  }
  rec(r: Record<string, unknown>): this {
    this.lines.push(JSON.stringify({ time: this.time(), ...r }));
    return this;
  }
  raw(line: string): this {
    this.lines.push(line);
    return this;
  }
  start(resumedAt: number | null): this {
    return this.rec({ type: 'start', world: 2, threads: 1, params: 123_456, tokens_per_step: 512, config: CONFIG, resumed_at: resumedAt });
  }
  /** Steps from+1..to, with an evaluation at every multiple of 10 in [evalFrom, to] before its step. */
  steps(from: number, to: number, evalFrom: number, lossOffset = 0): this {
    for (let i = from; i <= to; i++) {
      if (i % 10 === 0 && i >= evalFrom) this.rec({ type: 'eval', iter: i, train_loss: trueLoss(i) + lossOffset, val_loss: trueLoss(i) + 0.1 + lossOffset, lr: lr(i), tokens: i * 512 });
      if (i < to) this.rec({ type: 'train', iter: i + 1, loss: trueLoss(i + 1) + lossOffset, lr: lr(i), grad_norm: 1 + Math.exp(-i / 8), ms: 100, comm_ms: 5, tokens_per_s: 5120 + (i % 3), mfu: null, tokens: (i + 1) * 512 });
    }
    return this;
  }
  end(iter: number, best: number | null, interrupted = false): this {
    return this.rec({ type: 'end', iter, best_val_loss: best, tokens: iter * 512, ms: 40_000, interrupted });
  }
  text(): string {
    return this.lines.join('\n') + '\n';
  }
}
const trueLoss = (i: number): number => 2 + 8 * Math.exp(-i / 12);
const lr = (i: number): number => 6e-4 * Math.min(1, (i + 1) / 5);

/**
 * A resumed run: session 1 runs to step 30 then dies (no end line, and its last line is cut short); session 2
 * resumes from the snapshot at step 20 and finishes at 40. Malformed lines of several kinds are sprinkled in.
 */
function resumedRunText(): string {
  return new RunWriter()
    .start(null)
    .steps(0, 30, 0, 0.5) // +0.5: the superseded records are recognisable
    .raw('')
    .raw('not json at all')
    .raw('[1, 2, 3]')
    .raw('{"time":"2024-05-01T12:00:00Z","iter":3}')
    .raw('{"time":"2024-05-01T12:00:00Z","type":"mystery","iter":3}')
    .raw('{"time":"2024-05-01T12:00:00Z","type":"train","iter":3,"loss":"high"}')
    .raw('{"time":"2024-05-01T12:00:00Z","type":"train","iter":3.5,"loss":1}')
    .raw('{"time":"2024-05-01T12:00:00Z","type":"train","ite')
    .start(20)
    .steps(20, 40, 21)
    .end(40, trueLoss(40) + 0.1)
    .text();
}

// ------------------------------------------------------------------------------------------- parse + summary

test('parseMetrics skips malformed lines with notes and merges a resumed run into one history', () => {
  const m = parseMetrics(resumedRunText());
  assert.equal(m.malformed, 7);
  assert.equal(m.malformedNotes.length, 5);
  assert.match(m.malformedNotes[0]!, /^line \d+: not valid JSON$/);
  assert.match(m.malformedNotes.join('\n'), /not a JSON object/);
  assert.match(m.malformedNotes.join('\n'), /no 'type' field/);
  assert.match(m.malformedNotes.join('\n'), /unknown type "mystery"/);
  assert.match(m.malformedNotes.join('\n'), /field 'loss' is not a number/);

  assert.equal(m.sessions.length, 2);
  assert.equal(m.sessions[0]!.end, null);
  assert.equal(m.sessions[1]!.start.resumed_at, 20);
  // Session 1's steps 21..30 and its eval at 30 were redone by session 2, which replaces them.
  assert.equal(m.superseded, 11);
  assert.deepEqual(m.train.map((r) => r.iter), Array.from({ length: 40 }, (_, i) => i + 1));
  assert.deepEqual(m.evals.map((r) => r.iter), [0, 10, 20, 30, 40]);
  assert.equal(m.train[19]!.loss, trueLoss(20) + 0.5, 'step 20 is from session 1');
  assert.equal(m.train[29]!.loss, trueLoss(30), 'step 30 is from session 2');
  assert.equal(m.evals[3]!.val_loss, trueLoss(30) + 0.1);

  const s = summarise(m);
  assert.equal(s.status, 'completed');
  assert.equal(s.sessions, 2);
  assert.equal(s.iter, 40);
  assert.equal(s.maxIters, 40);
  assert.equal(s.bestValLoss, trueLoss(40) + 0.1);
  assert.equal(s.bestValIter, 40);
  assert.equal(s.lastTrainLoss, trueLoss(40));
  assert.equal(s.lastEval?.iter, 40);
  assert.equal(s.tokens, 40 * 512);
  // Session 1 has no end line: its time is the span of its timestamps; session 2's is the end line's ms.
  const s1 = m.sessions[0]!;
  assert.equal(s1.ms, Date.parse(s1.lastTime) - Date.parse(s1.start.time));
  assert.ok(s1.ms > 0);
  assert.equal(s.wallMs, s1.ms + 40_000);
  assert.ok(Math.abs(s.meanTokensPerS! - 5121) < 1.01);
  assert.equal(s.meanMfu, null);
  assert.equal(s.world, 2);
  assert.equal(s.params, 123_456);
  assert.deepEqual(s.config, CONFIG);
});

test('summarise: a run with no eval and no end line (still running or killed) is incomplete, with no val loss', () => {
  const m = parseMetrics(new RunWriter().start(null).steps(0, 7, 999).text());
  assert.equal(m.malformed, 0);
  assert.equal(m.evals.length, 0);
  const s = summarise(m);
  assert.equal(s.status, 'incomplete');
  assert.match(s.statusText, /no end record/);
  assert.equal(s.bestValLoss, null);
  assert.equal(s.lastEval, null);
  assert.equal(s.lastTrainIter, 7);
  assert.equal(s.wallMs, 7000);
});

test('summarise: an interrupted run; a diverged (null) loss is kept as NaN; Infinity best_val_loss (null) is no figure', () => {
  const w = new RunWriter().start(null).steps(0, 3, 999);
  w.rec({ type: 'train', iter: 4, loss: null, lr: 1e-4, grad_norm: null, ms: 100, tokens_per_s: 5000, mfu: 0.25, tokens: 2048 });
  w.end(4, null, true);
  const m = parseMetrics(w.text());
  assert.equal(m.malformed, 0);
  assert.ok(Number.isNaN(m.train[3]!.loss));
  const s = summarise(m);
  assert.equal(s.status, 'interrupted');
  assert.equal(s.lastTrainIter, 3, 'the last finite loss');
  assert.equal(s.bestValLoss, null);
  assert.equal(s.meanMfu, 0.25);
});

test('chart scale helpers: round ticks, consistent labels, min/max downsampling keeps spikes', () => {
  assert.deepEqual(niceTicks(0, 100, 5).ticks, [0, 20, 40, 60, 80, 100]);
  const { ticks, step } = niceTicks(0.99, 1.24, 5);
  assert.equal(step, 0.05);
  assert.deepEqual(formatTicks(ticks, step), ['1.00', '1.05', '1.10', '1.15', '1.20']);
  const wide = niceTicks(0.95, 1.32, 5);
  assert.deepEqual(formatTicks(wide.ticks, wide.step), ['1.0', '1.1', '1.2', '1.3']);
  const lrTicks = niceTicks(6e-5, 6e-4, 6);
  assert.deepEqual(formatTicks(lrTicks.ticks, lrTicks.step), ['1e-4', '2e-4', '3e-4', '4e-4', '5e-4', '6e-4']);
  const pts = Array.from({ length: 10_000 }, (_, i) => ({ x: i, y: i === 4321 ? 99 : 1 }));
  const d = downsample(pts, 500);
  assert.ok(d.length <= 500);
  assert.ok(d.some((p) => p.y === 99), 'the spike survives');
  assert.deepEqual(d.map((p) => p.x), [...d.map((p) => p.x)].sort((a, b) => a - b), 'x stays ordered');
});

// ------------------------------------------------------------------------------------------- PNG

interface DecodedPng {
  width: number;
  height: number;
  channels: number;
  pixels: Buffer;
  chunks: string[];
}

// node:zlib's crc32 (Node >= 20.15): not ours, so the check is independent of the code under test.
const CRC = (buf: Buffer): number => (zlib as unknown as { crc32: (b: Buffer) => number }).crc32(buf);

/** An independent PNG reader for the checks: every chunk's CRC, IHDR, 8-bit RGB/RGBA, all five row filters. */
function decodePng(file: Buffer): DecodedPng {
  assert.deepEqual([...file.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  let off = 8;
  const chunks: string[] = [];
  const idat: Buffer[] = [];
  let ihdr: Buffer | null = null;
  while (off < file.length) {
    const len = file.readUInt32BE(off);
    const type = file.toString('latin1', off + 4, off + 8);
    const data = file.subarray(off + 8, off + 8 + len);
    assert.equal(file.readUInt32BE(off + 8 + len), CRC(file.subarray(off + 4, off + 8 + len)), `CRC of chunk ${type}`);
    chunks.push(type);
    if (type === 'IHDR') ihdr = Buffer.from(data);
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
    if (type === 'IEND') break;
  }
  assert.equal(chunks[0], 'IHDR');
  assert.equal(chunks.at(-1), 'IEND');
  assert.equal(off, file.length, 'nothing after IEND');
  const width = ihdr!.readUInt32BE(0);
  const height = ihdr!.readUInt32BE(4);
  assert.equal(ihdr![8], 8, 'bit depth 8');
  assert.ok(ihdr![9] === 2 || ihdr![9] === 6, `colour type ${ihdr![9]}`);
  assert.equal(ihdr![12], 0, 'not interlaced');
  const channels = ihdr![9] === 6 ? 4 : 3;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  assert.equal(raw.length, (stride + 1) * height, 'inflated IDAT size matches the dimensions');
  const px = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    assert.ok(f <= 4, `row ${y} filter ${f}`);
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= channels ? px[y * stride + x - channels]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels]! : 0;
      let pred = 0;
      if (f === 1) pred = a;
      else if (f === 2) pred = b;
      else if (f === 3) pred = (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + x] = (v + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels: px, chunks };
}

/** Pixels within `tol` (per channel) of colour `c`. */
function countColour(img: DecodedPng, c: readonly number[], tol = 0): number {
  let n = 0;
  for (let i = 0; i < img.width * img.height; i++) {
    const o = i * img.channels;
    if (Math.abs(img.pixels[o]! - c[0]!) <= tol && Math.abs(img.pixels[o + 1]! - c[1]!) <= tol && Math.abs(img.pixels[o + 2]! - c[2]!) <= tol) n++;
  }
  return n;
}

/** Pixels of one colour (within `tol`), restricted to the box [x0, x1) x [y0, y1). */
function countIn(img: DecodedPng, c: readonly number[], tol: number, x0: number, x1: number, y0: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = (y * img.width + x) * img.channels;
      if (Math.abs(img.pixels[o]! - c[0]!) <= tol && Math.abs(img.pixels[o + 1]! - c[1]!) <= tol && Math.abs(img.pixels[o + 2]! - c[2]!) <= tol) n++;
    }
  }
  return n;
}

const TRAIN_BLUE = [0x1f, 0x77, 0xb4];
const VAL_RED = [0xd6, 0x27, 0x28];

test('loss.png is the loss chart SVG rasterised: 2x size, anti-aliased text and lines, curve falling, val dots', () => {
  const m = parseMetrics(resumedRunText());
  const svg = lossChartSvg(m);
  assert.match(svg, /<text class="title"[^>]*>training and validation loss<\/text>/);
  const img = decodePng(svgToPng(svg));
  assert.equal(img.width, 1520, 'the 760x300 chart at twice its size');
  assert.equal(img.height, 600);
  // Grey levels: the text and the axes are #333/#222 on white, and the grid #e5e5e5. A bitmap font has only those
  // exact values; anti-aliased glyph edges give many greys between them.
  const greys = new Set<number>();
  let nonWhite = 0;
  for (let i = 0; i < img.width * img.height; i++) {
    const o = i * img.channels;
    const [r, g, b] = [img.pixels[o]!, img.pixels[o + 1]!, img.pixels[o + 2]!];
    if (r !== 255 || g !== 255 || b !== 255) nonWhite++;
    if (r === g && g === b && r > 0x40 && r < 0xd0) greys.add(r);
  }
  assert.ok(nonWhite > 20_000, `drawn pixels: ${nonWhite}`);
  assert.ok(greys.size > 20, `intermediate grey levels (anti-aliasing): ${greys.size}`);
  // The title's glyphs sit top left (x 128.., y 0..40 at 2x); the tick labels left of the axis.
  assert.ok(countIn(img, [0x22, 0x22, 0x22], 90, 128, 500, 0, 44) > 500, 'title text drawn');
  assert.ok(countIn(img, [0x33, 0x33, 0x33], 90, 0, 120, 60, 520) > 300, 'y tick labels drawn');
  // The curve falls: train-loss blue in the left part of the plot sits higher than in the right part.
  const meanY = (x0: number, x1: number): number => {
    let sum = 0;
    let n = 0;
    for (let y = 60; y < 520; y++) for (let x = x0; x < x1; x++) if (countIn(img, TRAIN_BLUE, 20, x, x + 1, y, y + 1)) (sum += y), n++;
    assert.ok(n > 50, `blue pixels in x ${x0}..${x1}: ${n}`);
    return sum / n;
  };
  assert.ok(meanY(140, 500) < meanY(1000, 1450), 'loss decreases');
  // 5 val points of radius 3.5 (7 px at 2x: ~150 px each) plus the legend dot; anti-aliased edges are not counted.
  const red = countIn(img, VAL_RED, 24, 0, img.width, 0, img.height);
  assert.ok(red > 5 * 100, `val-loss pixels: ${red}`);
  assert.ok(countIn(img, VAL_RED, 24, 0, img.width, 60, img.height) > 4 * 100, 'val dots in the plot, not only the legend');

  // An empty run still gives a valid image (frame and message, no curve).
  const empty = decodePng(svgToPng(lossChartSvg(parseMetrics(new RunWriter().start(null).text()))));
  assert.equal(empty.width, 1520);
  assert.equal(countIn(empty, TRAIN_BLUE, 20, 0, empty.width, 0, empty.height), 0, 'no data, no curve');
});

// ------------------------------------------------------------------------------------------- report + Chromium

async function runDir(name: string, text: string): Promise<string> {
  const d = path.join(dir, name);
  await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(d, 'metrics.jsonl'), text);
  return d;
}

function chromiumPath(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function chromium(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('chromium', args, { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`chromium failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

test('writeReport writes a self-contained report.html that headless Chromium renders with charts full of data', async () => {
  assert.ok(chromiumPath(), "Debian's chromium is not installed: run bash scripts/setup.sh (it installs it)");
  const sample = { type: 'sample', iter: 40, label: 'best checkpoint (ckpt.pt)', prompt: 'The <b>', texts: ['The <b> bold & brave', 'second'], settings: { temperature: 0.8, top_k: null, seed: 7, max_new_tokens: 5 } };
  const d = await runDir('run-chromium', resumedRunText() + JSON.stringify({ time: '2024-05-01T13:00:00Z', ...sample }) + '\n');
  // The demo's baselines (data/baselines.ts): drawn as dashed lines, the axis stretched to show them.
  await fs.writeFile(path.join(d, 'baselines.json'), JSON.stringify({ uniform: 10.83, unigram: 7.5, vocab: 50257, trainTokens: 1, valTokens: 1 }));
  const r = await writeReport(d);
  assert.equal(r.html, path.join(d, 'report.html'));
  assert.equal(r.png, path.join(d, 'loss.png'));
  assert.equal(r.malformed, 7);
  const html = await fs.readFile(r.html, 'utf8');
  // Self-contained: no scripts, no external resources of any kind.
  assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(|\bsrc=|\bhref=/i);
  assert.deepEqual((await fs.readdir(d)).filter((f) => f.endsWith('.tmp')), [], 'no temp files left');

  const profile = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-chromium-'));
  try {
    const common = ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${profile}`, '--hide-scrollbars', '--window-size=900,2600'];
    const url = pathToFileURL(r.html).href;
    // --enable-logging=stderr: the page's console messages come out as CONSOLE lines (none expected).
    const { stdout: dom, stderr: log } = await chromium([...common, '--enable-logging=stderr', '--v=0', '--dump-dom', url]);
    assert.doesNotMatch(log, /CONSOLE|Uncaught|Refused to/, 'no console messages or errors');
    // The rendered DOM (as Chromium parsed it) holds each chart with every data point.
    for (const id of ['chart-loss', 'chart-grad-norm', 'chart-lr', 'chart-tokens']) assert.match(dom, new RegExp(`<svg id="${id}"`), id);
    const polyline = (cls: string): string[] => [...dom.matchAll(new RegExp(`<polyline class="series ${cls}"[^>]*\\spoints="([^"]*)"`, 'g'))].map((x) => x[1]!);
    for (const cls of ['train-loss', 'grad-norm', 'lr', 'tokens-per-s']) {
      const lines = polyline(cls);
      assert.equal(lines.length, 1, `${cls}: one polyline`);
      const pairs = lines[0]!.trim().split(/\s+/);
      assert.equal(pairs.length, 40, `${cls}: one point per logged step`);
      for (const p of pairs) assert.match(p, /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/);
    }
    const valDots = dom.match(/<g class="series val-loss"[^>]*>(.*?)<\/g>/s)![1]!;
    assert.equal((valDots.match(/<circle /g) ?? []).length, 5, 'one val dot per evaluation');
    assert.match(valDots, /<title>step 40: val loss \(eval\) 2\.\d{4}<\/title>/);
    const figure = (key: string): string => dom.match(new RegExp(`<td data-figure="${key}">([^<]*)</td>`))?.[1] ?? '(missing)';
    assert.equal(figure('status'), 'completed');
    assert.equal(figure('best-val-loss'), (trueLoss(40) + 0.1).toFixed(4));
    assert.equal(figure('last-train-loss'), trueLoss(40).toFixed(4));
    assert.equal(figure('tokens'), '20.5k (20480)');
    assert.equal(figure('iterations'), '40 / 40');
    assert.equal(figure('world'), '2');
    assert.match(figure('node'), /^v\d+\./);
    // The sample record: its texts escaped, its settings listed; no meta refresh in a one-off report.
    assert.match(dom, /<pre class="sample">The &lt;b&gt; bold &amp; brave<\/pre>\s*<pre class="sample">second<\/pre>/);
    assert.match(dom, /checkpoint at step 40 · best checkpoint \(ckpt\.pt\) · temperature 0\.8 · top_k — · seed 7/);
    assert.doesNotMatch(dom, /http-equiv="refresh"/);
    assert.match(dom, /<g class="ref baseline-uniform"><line [^>]*stroke-dasharray[^>]*>(<\/line>)?<text [^>]*>uniform baseline 10\.83 \(untrained model\)<\/text>/);
    assert.match(dom, /<g class="ref baseline-unigram">/);
    assert.equal(figure('vs-unigram'), `beats unigram by ${(7.5 - (trueLoss(40) + 0.1)).toFixed(2)} nats`);
    const lossSvg = /<svg id="chart-loss"[\s\S]*?<\/svg>/.exec(dom)![0];
    const yTicks = [...lossSvg.matchAll(/class="ytick"[^>]*>([^<]*)</g)].map((t) => Number(t[1]));
    assert.ok(Math.max(...yTicks) >= 10, `the loss axis reaches the uniform baseline: ${yTicks.join(', ')}`);
    assert.match(dom, /7 malformed line\(s\) in metrics\.jsonl were skipped/);
    assert.match(dom, /<th>trainer_config\.max_iters<\/th><td>40<\/td>/);

    // And it paints: the screenshot has the train-loss blue and the val-loss red in it.
    const shot = path.join(profile, 'shot.png');
    await chromium([...common, `--screenshot=${shot}`, url]);
    const img = decodePng(await fs.readFile(shot));
    assert.equal(img.width, 900);
    const blue = countColour(img, [0x1f, 0x77, 0xb4], 24);
    const red = countColour(img, [0xd6, 0x27, 0x28], 24);
    assert.ok(blue > 300, `train-loss line pixels in the screenshot: ${blue}`);
    assert.ok(red > 100, `val-loss dot pixels in the screenshot: ${red}`);
    assert.ok(countColour(img, [0x8c, 0x56, 0x4b], 24) > 100, 'grad-norm line painted');
  } finally {
    await fs.rm(profile, { recursive: true, force: true });
  }
});

test('a report for a run without evaluations or an end line renders, saying so', async () => {
  const d = await runDir('run-noeval', new RunWriter().start(null).steps(0, 5, 999).text());
  const r = await writeReport(d);
  const html = await fs.readFile(r.html, 'utf8');
  assert.match(html, /No evaluation was logged/);
  assert.match(html, /<td data-figure="best-val-loss">—<\/td>/);
  assert.match(html, /<td data-figure="status">incomplete<\/td>/);
  assert.match(html, /<polyline class="series train-loss" data-points="5"/);
  assert.doesNotMatch(html, /<g class="series val-loss"[^>]*><circle/);
  assert.match(html, /No samples recorded for this run/);
  decodePng(await fs.readFile(r.png));
});

// ------------------------------------------------------------------------------------------- CLI

function nanogpt(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 30_000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('nanogpt report <dir> writes both files; a missing directory or metrics file is exit 2 with a fix', async () => {
  const d = await runDir('run-cli', new RunWriter().start(null).steps(0, 20, 0).end(20, trueLoss(20) + 0.1).text());
  const ok = await nanogpt(['report', d]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /wrote .*report\.html/);
  assert.ok((await fs.stat(path.join(d, 'report.html'))).size > 1000);
  decodePng(await fs.readFile(path.join(d, 'loss.png')));
  const flag = await nanogpt(['report', '--out-dir', d]);
  assert.equal(flag.code, 0, flag.stderr);

  // No font for loss.png: exit 2 with the fix, report.html written all the same.
  await fs.rm(path.join(d, 'report.html'));
  const noFont = await nanogpt(['report', d], { NANOGPT_REPORT_FONT: path.join(dir, 'no-such-font.ttf') });
  assert.equal(noFont.code, 2, noFont.stderr);
  assert.match(noFont.stderr, /NANOGPT_REPORT_FONT=.*no-such-font\.ttf: no such file[\s\S]*fix: point it at a \.ttf/);
  assert.ok((await fs.stat(path.join(d, 'report.html'))).size > 1000, 'the page is written before the PNG');

  const missing = await nanogpt(['report', path.join(dir, 'no-such-run')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /run directory .*no-such-run does not exist/);
  assert.match(missing.stderr, /fix: train first/);
  assert.doesNotMatch(missing.stderr, /at .*\.js:\d+/, 'no stack trace');

  const emptyDir = path.join(dir, 'empty-run');
  await fs.mkdir(emptyDir);
  const noMetrics = await nanogpt(['report', emptyDir]);
  assert.equal(noMetrics.code, 2);
  assert.match(noMetrics.stderr, /no metrics\.jsonl in .*empty-run/);

  await fs.writeFile(path.join(emptyDir, 'metrics.jsonl'), '{"trunc');
  const junk = await nanogpt(['report', emptyDir]);
  assert.equal(junk.code, 2);
  assert.match(junk.stderr, /holds no metrics record \(1 malformed line/);

  const none = await nanogpt(['report']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no run directory given/);

  const help = await nanogpt(['report', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: nanogpt report <out_dir>/);
  assert.match(help.stdout, /Examples:/);
});

test('nanogpt report --watch redraws as metrics.jsonl grows, stops by itself at the end record and on SIGINT', async () => {
  const d = path.join(dir, 'run-watch');
  const w = new RunWriter().start(null).steps(0, 20, 0);
  const lines = w.lines.slice();
  const count = async (): Promise<number | null> => {
    const html = await fs.readFile(path.join(d, 'report.html'), 'utf8').catch(() => '');
    const m = /metrics\.jsonl \((\d+) records\)/.exec(html);
    return m ? Number(m[1]) : null;
  };
  const until = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + 15_000;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const start = (): { done: Promise<{ code: number | null; stderr: string }>; child: ReturnType<typeof spawn>; stderr: () => string } => {
    const child = spawn(process.execPath, [bin, 'report', d, '--watch', '--interval', '0.2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    return { child, stderr: () => stderr, done: new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr }))) };
  };

  // Started before the run has logged anything (not even its directory): it waits.
  const a = start();
  await until('the watch to wait', async () => /waiting for .*metrics\.jsonl/.test(a.stderr()));
  await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(d, 'metrics.jsonl'), lines.slice(0, 10).join('\n') + '\n');
  await until('the first report', async () => (await count()) === 10);
  const first = await fs.readFile(path.join(d, 'report.html'), 'utf8');
  assert.match(first, /<meta http-equiv="refresh" content="\d+">/, 'reloads while the run goes');
  await fs.appendFile(path.join(d, 'metrics.jsonl'), lines.slice(10).join('\n') + '\n');
  await until('a redraw with every line', async () => (await count()) === lines.length);
  await fs.appendFile(path.join(d, 'metrics.jsonl'), new RunWriter().end(20, 2.5).lines[0] + '\n');
  const ended = await a.done;
  assert.equal(ended.code, 0, ended.stderr);
  assert.match(ended.stderr, /waiting for .*metrics\.jsonl/);
  assert.match(ended.stderr, /the run has ended; final report: .*report\.html/);
  assert.doesNotMatch(await fs.readFile(path.join(d, 'report.html'), 'utf8'), /http-equiv/, 'the final report does not reload');
  assert.deepEqual((await fs.readdir(d)).filter((f) => f.endsWith('.tmp')), []);

  // Ctrl-C ends a watch cleanly, exit 0, the last report in place.
  await fs.writeFile(path.join(d, 'metrics.jsonl'), lines.join('\n') + '\n');
  await fs.rm(path.join(d, 'report.html'));
  const b = start();
  await until('the report', async () => (await count()) === lines.length);
  b.child.kill('SIGINT');
  const stopped = await b.done;
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.match(stopped.stderr, /stopped watching; last report: .*report\.html/);

  const bad = await nanogpt(['report', d, '--interval', '1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--interval only applies to --watch/);
});
