// A minimal PNG writer (8-bit RGB, zlib from node:zlib) and a small rasteriser that draws the loss chart
// (loss.png) without any graphics dependency: lines, dots, axes and tick labels in a built-in 5x7 bitmap font.
import { deflateSync } from 'node:zlib';
import { downsample, extentOf, formatTicks, makeScale, niceTicks, padExtent, type Point } from './chart-scale.js';
import type { ParsedMetrics } from './metrics-reader.js';

// ---------------------------------------------------------------------------------------------------- encoder

// CRC-32 (ISO 3309, reflected polynomial 0xEDB88320) as PNG chunks require; one 256-entry table, built once.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 8);
  // The CRC covers the chunk type and data, not the length.
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Encodes tightly packed 8-bit RGB pixels (row-major, `width * height * 3` bytes) as a PNG file. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new Error(`bad PNG size ${width}x${height}`);
  if (rgb.length !== width * height * 3) throw new Error(`expected ${width * height * 3} RGB bytes, got ${rgb.length}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour RGB
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  // Each scanline is prefixed with its filter type; 0 (None) is enough here: a chart is mostly flat colour,
  // which deflate already compresses well.
  const stride = width * 3;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))]);
}

// ---------------------------------------------------------------------------------------------------- raster

export type Rgb = readonly [number, number, number];

export class Canvas {
  readonly pixels: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    this.pixels = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    this.pixels[i] = c[0];
    this.pixels[i + 1] = c[1];
    this.pixels[i + 2] = c[2];
  }

  fillRect(x: number, y: number, w: number, h: number, c: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) this.set(xx, yy, c);
  }

  /** A straight line `thickness` pixels wide: a square brush stamped every half pixel along it. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1): void {
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) * 2));
    const lo = -Math.floor((thickness - 1) / 2);
    const hi = lo + thickness - 1;
    for (let i = 0; i <= n; i++) {
      const x = Math.round(x0 + ((x1 - x0) * i) / n);
      const y = Math.round(y0 + ((y1 - y0) * i) / n);
      for (let dy = lo; dy <= hi; dy++) for (let dx = lo; dx <= hi; dx++) this.set(x + dx, y + dy, c);
    }
  }

  disc(cx: number, cy: number, r: number, c: Rgb): void {
    for (let dy = -Math.ceil(r); dy <= Math.ceil(r); dy++) {
      for (let dx = -Math.ceil(r); dx <= Math.ceil(r); dx++) if (dx * dx + dy * dy <= r * r + 0.5) this.set(cx + dx, cy + dy, c);
    }
  }

  /** Draws `text` in the 5x7 font, each font pixel `scale` screen pixels; returns the width drawn. */
  text(x: number, y: number, text: string, c: Rgb, scale = 1): number {
    let cx = Math.round(x);
    for (const ch of text) {
      const g = FONT[ch] ?? FONT['?']!;
      for (let row = 0; row < 7; row++) {
        for (let col = 0; col < 5; col++) if (g[row]![col] === '#') this.fillRect(cx + col * scale, Math.round(y) + row * scale, scale, scale, c);
      }
      cx += 6 * scale;
    }
    return cx - Math.round(x);
  }
}

export function textWidth(text: string, scale = 1): number {
  return [...text].length * 6 * scale - scale;
}

// A hand-drawn 5x7 font with just what the chart prints: digits, number punctuation and the few lowercase
// letters of its labels. Unknown characters draw as a hollow box, so a missing glyph is visible, not silent.
const FONT: Record<string, readonly string[]> = {
  '0': ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
  '1': ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  '2': ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
  '3': ['#####', '...#.', '..#..', '...#.', '....#', '#...#', '.###.'],
  '4': ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
  '5': ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
  '6': ['..##.', '.#...', '#....', '####.', '#...#', '#...#', '.###.'],
  '7': ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
  '8': ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
  '9': ['.###.', '#...#', '#...#', '.####', '....#', '...#.', '.##..'],
  '.': ['.....', '.....', '.....', '.....', '.....', '.##..', '.##..'],
  '-': ['.....', '.....', '.....', '.###.', '.....', '.....', '.....'],
  '+': ['.....', '..#..', '..#..', '#####', '..#..', '..#..', '.....'],
  ' ': ['.....', '.....', '.....', '.....', '.....', '.....', '.....'],
  '?': ['#####', '#...#', '#...#', '#...#', '#...#', '#...#', '#####'],
  a: ['.....', '.....', '.###.', '....#', '.####', '#...#', '.####'],
  e: ['.....', '.....', '.###.', '#...#', '#####', '#....', '.###.'],
  i: ['..#..', '.....', '.##..', '..#..', '..#..', '..#..', '.###.'],
  l: ['.##..', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  n: ['.....', '.....', '#.##.', '##..#', '#...#', '#...#', '#...#'],
  o: ['.....', '.....', '.###.', '#...#', '#...#', '#...#', '.###.'],
  p: ['.....', '.....', '####.', '#...#', '####.', '#....', '#....'],
  r: ['.....', '.....', '#.##.', '##..#', '#....', '#....', '#....'],
  s: ['.....', '.....', '.####', '#....', '.###.', '....#', '####.'],
  t: ['.#...', '.#...', '###..', '.#...', '.#...', '.#..#', '..##.'],
  v: ['.....', '.....', '#...#', '#...#', '#...#', '.#.#.', '..#..'],
};

export const FONT_CHARS = Object.keys(FONT).join('');
export const FONT_GLYPHS: Readonly<Record<string, readonly string[]>> = FONT;

// ---------------------------------------------------------------------------------------------------- chart

export const CHART_COLORS = {
  background: [255, 255, 255] as Rgb,
  grid: [229, 229, 229] as Rgb,
  axis: [51, 51, 51] as Rgb,
  text: [34, 34, 34] as Rgb,
  train: [31, 119, 180] as Rgb,
  val: [214, 39, 40] as Rgb,
};

export interface LossChartOptions {
  width?: number;
  height?: number;
}

/**
 * Rasterises the loss curves: train loss per logged step as a line (broken where a loss is not finite), val
 * loss at each evaluation as dots, with gridlines and tick labels. A run with no losses yet gives an empty frame.
 */
export function renderLossChart(m: ParsedMetrics, opts: LossChartOptions = {}): Canvas {
  const W = opts.width ?? 800;
  const H = opts.height ?? 450;
  const C = CHART_COLORS;
  const cv = new Canvas(W, H, C.background);
  const S = 2; // font scale: 10x14-pixel characters
  const left = 80;
  const right = W - 20;
  const top = 44;
  const bottom = H - 52;

  const train: Point[] = m.train.map((r) => ({ x: r.iter, y: r.loss }));
  const val: Point[] = m.evals.filter((e) => Number.isFinite(e.val_loss)).map((e) => ({ x: e.iter, y: e.val_loss }));
  const xs = extentOf([...train.map((p) => p.x), ...val.map((p) => p.x)]);
  const ys = extentOf([...train.map((p) => p.y), ...val.map((p) => p.y)]);

  cv.text(left, 14, 'loss', C.text, S);
  // Legend, right-aligned on the title row.
  const legendVal = 'val loss';
  const legendTrain = 'train loss';
  let lx = right - textWidth(legendVal, S);
  cv.text(lx, 14, legendVal, C.text, S);
  cv.disc(lx - 14, 21, 4, C.val);
  lx -= 30 + textWidth(legendTrain, S);
  cv.text(lx, 14, legendTrain, C.text, S);
  cv.line(lx - 30, 21, lx - 8, 21, C.train, 3);

  const xDomain = xs ? (xs.min === xs.max ? padExtent(xs) : xs) : { min: 0, max: 1 };
  const yDomain = ys ? padExtent(ys) : { min: 0, max: 1 };
  const sx = makeScale(xDomain, [left, right]);
  const sy = makeScale(yDomain, [bottom, top]);

  // Gridlines and tick labels first, so the data is drawn over them.
  // Fewer x ticks until their labels (wide for six-digit steps) fit side by side without touching.
  let xt = niceTicks(xDomain.min, xDomain.max, 8);
  let xl = formatTicks(xt.ticks, xt.step);
  for (let target = 7; target >= 2; target--) {
    const widest = Math.max(...xl.map((l) => textWidth(l, S)));
    if (xt.ticks.length < 2 || Math.abs(sx(xt.ticks[1]!) - sx(xt.ticks[0]!)) >= widest + 16) break;
    xt = niceTicks(xDomain.min, xDomain.max, target);
    xl = formatTicks(xt.ticks, xt.step);
  }
  for (const [i, t] of xt.ticks.entries()) {
    const x = Math.round(sx(t));
    cv.line(x, top, x, bottom, C.grid);
    cv.line(x, bottom, x, bottom + 5, C.axis);
    const label = xl[i]!;
    // Centred under the tick, but kept inside the image (the last label of a wide axis would be cut off).
    const w = textWidth(label, S);
    cv.text(Math.max(2, Math.min(W - 2 - w, x - w / 2)), bottom + 10, label, C.text, S);
  }
  const yt = niceTicks(yDomain.min, yDomain.max, 6);
  const yl = formatTicks(yt.ticks, yt.step);
  for (const [i, t] of yt.ticks.entries()) {
    const y = Math.round(sy(t));
    cv.line(left, y, right, y, C.grid);
    cv.line(left - 5, y, left, y, C.axis);
    const label = yl[i]!;
    cv.text(left - 10 - textWidth(label, S), y - 7, label, C.text, S);
  }
  cv.line(left, top, left, bottom, C.axis);
  cv.line(left, bottom, right, bottom, C.axis);
  cv.text((left + right) / 2 - textWidth('step', S) / 2, H - 18, 'step', C.text, S);

  // One drawn point per half pixel of width is all the raster can show.
  let prev: Point | null = null;
  for (const p of downsample(train, (right - left) * 2)) {
    if (!Number.isFinite(p.y)) {
      prev = null;
      continue;
    }
    const q = { x: sx(p.x), y: sy(p.y) };
    if (prev) cv.line(prev.x, prev.y, q.x, q.y, C.train, 2);
    else cv.disc(q.x, q.y, 1, C.train); // a lone point (first, or after a gap) still shows
    prev = q;
  }
  for (const p of val) cv.disc(sx(p.x), sy(p.y), 4, C.val);
  if (!xs) {
    const msg = 'no losses'; // only letters the built-in font has
    cv.text((left + right) / 2 - textWidth(msg, S) / 2, (top + bottom) / 2, msg, C.text, S);
  }
  return cv;
}

/** The loss chart as PNG bytes. */
export function lossChartPng(m: ParsedMetrics, opts: LossChartOptions = {}): Buffer {
  const cv = renderLossChart(m, opts);
  return encodePng(cv.width, cv.height, cv.pixels);
}
