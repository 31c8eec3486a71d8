// loss.png: the loss chart's SVG (the very string report.html embeds) rasterised by resvg, a maintained SVG
// renderer (Rust, prebuilt for the common platforms by @resvg/resvg-js), so the image gets anti-aliased text
// and lines and looks like the page. Text needs a font file: resvg is given one explicitly and never scans the
// system, so the result does not depend on what fontconfig happens to find.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Resvg as ResvgClass } from '@resvg/resvg-js';
import { UserError } from '../util/errors.js';

/** The family the chart SVGs ask for first (html.ts), and the file that provides it. */
export const CHART_FONT_FAMILY = 'DejaVu Sans';

/**
 * Where DejaVu Sans lives: Debian/Ubuntu (fonts-dejavu-core, which scripts/setup.sh installs), Fedora, Arch.
 * NANOGPT_REPORT_FONT, when set, names another .ttf/.otf to use instead.
 */
export const FONT_CANDIDATES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
];

export function chartFontFile(): string {
  const override = process.env.NANOGPT_REPORT_FONT;
  if (override) {
    if (!existsSync(override)) throw new UserError(`NANOGPT_REPORT_FONT=${override}: no such file`, 'point it at a .ttf or .otf font file, or unset it to use DejaVu Sans');
    return override;
  }
  const found = FONT_CANDIDATES.find((f) => existsSync(f));
  if (!found) {
    throw new UserError(
      `no font to draw loss.png with (looked for DejaVu Sans at ${FONT_CANDIDATES[0]} and ${FONT_CANDIDATES.length - 1} other places)`,
      'run npm run setup (it installs Debian\'s fonts-dejavu-core), or apt-get install fonts-dejavu-core, or set NANOGPT_REPORT_FONT to a .ttf file',
    );
  }
  return found;
}

let resvg: typeof ResvgClass | null = null;

// Loaded on first use: a platform without a prebuilt resvg still gets report.html (written first), and commands
// that never draw a PNG never load the binary.
function loadResvg(): typeof ResvgClass {
  if (resvg) return resvg;
  try {
    const require = createRequire(import.meta.url);
    resvg = (require('@resvg/resvg-js') as { Resvg: typeof ResvgClass }).Resvg;
  } catch (err) {
    throw new UserError(
      `the SVG rasteriser @resvg/resvg-js could not be loaded on ${process.platform}-${process.arch} (${(err as Error).message.split('\n')[0]})`,
      'run npm ci (it installs the prebuilt binary for this platform); report.html does not need it',
    );
  }
  return resvg;
}

/**
 * Rasterises an SVG document to PNG bytes at `scale` times its own size (2: a sharp image on high-density
 * screens and in slides, as matplotlib's dpi=200).
 */
export function svgToPng(svg: string, scale = 2): Buffer {
  const Resvg = loadResvg();
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: { fontFiles: [chartFontFile()], loadSystemFonts: false, defaultFontFamily: CHART_FONT_FAMILY, sansSerifFamily: CHART_FONT_FAMILY },
  });
  return r.render().asPng();
}
