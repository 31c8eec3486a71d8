// Axis arithmetic for the SVG charts (html.ts): round ticks, their labels, scales and line downsampling.

export interface Point {
  x: number;
  y: number;
}

export interface Extent {
  min: number;
  max: number;
}

/** Min and max of the finite values; null when there are none (a chart with nothing to draw). */
export function extentOf(values: Iterable<number>): Extent | null {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return min <= max ? { min, max } : null;
}

/**
 * Pads a degenerate or tight range so a flat line is drawn mid-chart rather than on an edge, and so the data
 * never touches the frame.
 */
export function padExtent(e: Extent, fraction = 0.05): Extent {
  if (e.max === e.min) {
    const d = e.min === 0 ? 1 : Math.abs(e.min) * 0.1;
    return { min: e.min - d, max: e.max + d };
  }
  const d = (e.max - e.min) * fraction;
  return { min: e.min - d, max: e.max + d };
}

/**
 * About `target` round tick values (1, 2 or 5 times a power of ten) covering [min, max]. Returned ticks lie
 * inside the range; `step` is their spacing (used to choose how many decimals to print).
 */
export function niceTicks(min: number, max: number, target = 5): { ticks: number[]; step: number } {
  if (!(max > min)) return { ticks: [min], step: 1 };
  const raw = (max - min) / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const ticks: number[] = [];
  // Integer multiples of step avoid accumulating floating-point drift (0.30000000000000004).
  for (let k = Math.ceil(min / step - 1e-9); k * step <= max + step * 1e-9; k++) ticks.push(k * step + 0); // + 0 turns -0 into 0
  return { ticks, step };
}

/**
 * Labels for one axis's ticks: decimals enough for the tick spacing, or exponent form (all ticks alike) when the
 * axis's magnitudes are very large or small, e.g. a learning rate axis 1e-4 … 6e-4.
 */
export function formatTicks(ticks: readonly number[], step: number): string[] {
  const maxAbs = Math.max(0, ...ticks.map(Math.abs));
  if (maxAbs >= 1e6 || (maxAbs > 0 && maxAbs < 1e-3)) {
    // Mantissa digits: how many decimal places of the largest tick's mantissa the step reaches down to.
    const digits = Math.max(0, Math.min(3, Math.floor(Math.log10(maxAbs) + 1e-9) - Math.floor(Math.log10(step) + 1e-9)));
    return ticks.map((v) => (v === 0 ? '0' : v.toExponential(digits).replace('e+', 'e')));
  }
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return ticks.map((v) => (v === 0 ? '0' : v.toFixed(decimals)));
}

/**
 * Reduces a long series to at most about `max` points for drawing, keeping the min and max of each bucket so
 * spikes stay visible (plain striding would hide them). Short series are returned unchanged.
 */
export function downsample(points: readonly Point[], max: number): Point[] {
  if (points.length <= max) return points.slice();
  const buckets = Math.max(1, Math.floor(max / 2));
  const size = points.length / buckets;
  const out: Point[] = [];
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * size);
    const hi = Math.min(points.length, Math.floor((b + 1) * size));
    let pMin: Point | null = null;
    let pMax: Point | null = null;
    for (let i = lo; i < hi; i++) {
      const p = points[i]!;
      if (pMin === null || p.y < pMin.y) pMin = p;
      if (pMax === null || p.y > pMax.y) pMax = p;
    }
    if (pMin === null || pMax === null) continue;
    if (pMin === pMax) out.push(pMin);
    else if (pMin.x <= pMax.x) out.push(pMin, pMax);
    else out.push(pMax, pMin);
  }
  return out;
}

/** Maps data coordinates linearly onto a pixel box (y grows downwards, as in SVG and in the raster). */
export function makeScale(domain: Extent, range: [number, number]): (v: number) => number {
  const [r0, r1] = range;
  const span = domain.max - domain.min || 1;
  return (v) => r0 + ((v - domain.min) / span) * (r1 - r0);
}
