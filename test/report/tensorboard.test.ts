// TensorBoard event files and the live report, checked from the outside: the event files are read back by
// Google's protobuf runtime and crcmod (Debian's python3-protobuf, protobuf-compiler, python3-crcmod; see
// fixtures/read_tfevents.py), never by the encoder under test.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { crc32c, maskedCrc32c } from '../../src/report/tensorboard.js';
import { writeReport, writeReportSync } from '../../src/report/write-report.js';
import { LIVE_PNG_INTERVAL_MS, LIVE_REPORT_REFRESH_S, MetricsLog } from '../../src/train/metrics.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { nanogpt, tinyTrainArgs } from '../helpers/nanogpt-cli.js';

const fixtures = fileURLToPath(new URL('../../../test/report/fixtures/', import.meta.url));
const PYTHON = '/usr/bin/python3'; // Debian's, where python3-protobuf is installed (not a pyenv or venv python)
const root = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-tb-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface ReadEvent {
  file: string;
  wall_time: number;
  step: number;
  what: 'file_version' | 'summary' | 'session_log';
  mismatch?: boolean;
  file_version?: string;
  values?: Array<{ tag: string; kind: string; value: number | 'NaN' }>;
  status?: string;
}

let compiled: string | null = null;
/** Events of the given files, as the independent reader sees them. */
function readEvents(files: string[]): ReadEvent[] {
  const missing = ['/usr/bin/protoc', PYTHON].filter((f) => !existsSync(f));
  const mods = spawnSync(PYTHON, ['-c', 'import google.protobuf, crcmod'], { encoding: 'utf8' });
  assert.ok(missing.length === 0 && mods.status === 0, `the tfevents reader needs protobuf-compiler, python3-protobuf and python3-crcmod: run bash scripts/setup.sh (${missing.join(', ')} ${mods.stderr})`);
  if (compiled === null) {
    compiled = mkdtempSync(path.join(root, 'pb-'));
    execFileSync('/usr/bin/protoc', [`--python_out=${compiled}`, `--proto_path=${fixtures}`, 'tfevents.proto']);
  }
  const out = execFileSync(PYTHON, [path.join(fixtures, 'read_tfevents.py'), compiled, ...files], { encoding: 'utf8' });
  return out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as ReadEvent);
}

const eventFiles = (outDir: string): string[] => {
  const dir = path.join(outDir, 'tensorboard');
  return readdirSync(dir).sort().map((f) => path.join(dir, f));
};

/** The scalars at `step` under `tag` (a step can hold a train and an eval event). */
function scalar(events: ReadEvent[], step: number, tag: string): number | 'NaN' | undefined {
  for (const e of events) if (e.what === 'summary' && e.step === step) for (const v of e.values!) if (v.tag === tag) return v.value;
  return undefined;
}

test('crc32c: the standard check value; masking as TFRecord defines it', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  const c = 0xe3069283;
  assert.equal(maskedCrc32c(Buffer.from('123456789')), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
});

test('MetricsLog: TensorBoard events read back by protobuf + crcmod equal metrics.jsonl; the report is redrawn at each eval, reloading while the run goes', async () => {
  const out = path.join(root, 'unit-run');
  const m = new MetricsLog(out, true, 0); // 0: loss.png at every evaluation too
  m.write({ type: 'start', world: 1, threads: 1, params: 10, tokens_per_step: 8, config: { trainer_config: { max_iters: 6 } }, resumed_at: null });
  m.write({ type: 'eval', iter: 0, train_loss: 10.5, val_loss: 10.6, lr: 0, tokens: 0 });
  const html = path.join(out, 'report.html');
  assert.match(readFileSync(html, 'utf8'), new RegExp(`<meta http-equiv="refresh" content="${LIVE_REPORT_REFRESH_S}">`), 'live report after the first eval');
  assert.match(readFileSync(html, 'utf8'), /metrics\.jsonl \(2 records\)/);
  const before = statSync(html).mtimeMs;
  for (let i = 1; i <= 6; i++) {
    m.write({ type: 'train', iter: i, loss: 10 - i / 3, lr: 1e-4 * i, grad_norm: 3 / i, ms: 100 + i, comm_ms: 0, tokens_per_s: 80 + i, mfu: i === 6 ? 0.125 : null, tokens: 8 * i });
    if (i % 3 === 0) m.write({ type: 'eval', iter: i, train_loss: 10 - i / 3 + 0.01, val_loss: 10 - i / 3 + 0.05, lr: 1e-4 * i, tokens: 8 * i });
    if (i === 2) assert.equal(statSync(html).mtimeMs, before, 'train records alone do not redraw the report');
  }
  assert.match(readFileSync(html, 'utf8'), /metrics\.jsonl \(10 records\)/, 'redrawn at the eval of step 6');
  assert.ok(readFileSync(path.join(out, 'loss.png')).subarray(1, 4).equals(Buffer.from('PNG')));
  m.write({ type: 'end', iter: 6, best_val_loss: 8.05, tokens: 48, ms: 600, interrupted: false });
  // With the default interval, an evaluation soon after the start redraws report.html and leaves loss.png alone.
  const quick = path.join(root, 'quick-run');
  const q = new MetricsLog(quick, true);
  q.write({ type: 'start', world: 1, threads: 1, params: 10, tokens_per_step: 8, config: {}, resumed_at: null });
  q.write({ type: 'eval', iter: 0, train_loss: 10.5, val_loss: 10.6, lr: 0, tokens: 0 });
  assert.ok(existsSync(path.join(quick, 'report.html')));
  assert.ok(!existsSync(path.join(quick, 'loss.png')), `loss.png waits ${LIVE_PNG_INTERVAL_MS} ms`);

  // A resumed session from the snapshot at step 3 writes a second event file that starts with SessionLog START
  // at step 4: TensorBoard drops the first session's steps 4.. from its view.
  const m2 = new MetricsLog(out, false);
  m2.write({ type: 'start', world: 1, threads: 1, params: 10, tokens_per_step: 8, config: {}, resumed_at: 3 });
  m2.write({ type: 'train', iter: 4, loss: Number.NaN, lr: 4e-4, grad_norm: 1, ms: 100, comm_ms: 0, tokens_per_s: 80, mfu: null, tokens: 32 });

  const files = eventFiles(out);
  assert.equal(files.length, 2, 'one event file per session');
  for (const f of files) assert.match(path.basename(f), new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${os.hostname().replace(/\./g, '\\.')}\\.\\d+\\.\\d+$`));
  const [first, second] = [readEvents([files[0]!]), readEvents([files[1]!])];
  for (const e of [...first, ...second]) assert.ok(!e.mismatch, `event at step ${e.step} re-encodes the same under the official field numbers`);
  assert.equal(first[0]!.what, 'file_version');
  assert.equal(first[0]!.file_version, 'brain.Event:2');
  assert.deepEqual([first[1]!.what, first[1]!.status, first[1]!.step], ['session_log', 'START', 0]);
  assert.deepEqual([second[1]!.what, second[1]!.status, second[1]!.step], ['session_log', 'START', 4]);
  assert.ok(Math.abs(first[2]!.wall_time - Date.now() / 1000) < 120, 'wall_time in seconds');

  // Every number in metrics.jsonl is in the events, as float32.
  const records = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | null | string>);
  let checked = 0;
  for (const r of records.slice(0, 11)) {
    const pairs: Array<[string, string]> =
      r.type === 'train'
        ? [['loss', 'train/loss'], ['lr', 'train/lr'], ['grad_norm', 'train/grad_norm'], ['tokens_per_s', 'train/tokens_per_s'], ['ms', 'train/step_ms']]
        : r.type === 'eval'
          ? [['train_loss', 'eval/train_loss'], ['val_loss', 'eval/val_loss']]
          : [];
    for (const [key, tag] of pairs) {
      const want = Math.fround(r[key] as number);
      const got = r.type === 'eval' ? first.filter((e) => e.values?.some((v) => v.tag.startsWith('eval/'))).find((e) => e.step === r.iter)?.values?.find((v) => v.tag === tag)?.value : scalar(first, r.iter as number, tag);
      assert.equal(got, want, `${r.type} step ${r.iter} ${tag}`);
      checked++;
    }
  }
  assert.equal(checked, 6 * 5 + 3 * 2);
  assert.equal(scalar(first, 6, 'train/mfu'), 0.125);
  assert.equal(scalar(first, 5, 'train/mfu'), undefined, 'no mfu when the run has no peak_flops');
  assert.equal(scalar(second, 4, 'train/loss'), 'NaN', 'a diverged loss stays NaN');

  // The final report (what the trainer writes after the end record) no longer reloads.
  await writeReport(out);
  assert.doesNotMatch(readFileSync(html, 'utf8'), /http-equiv/);
});

test('the per-eval report rewrite of a 1000-step run is cheap: report.html tens of ms, loss.png well under a second', (t) => {
  const out = path.join(root, 'cost');
  const m = new MetricsLog(out, true);
  m.write({ type: 'start', world: 1, threads: 1, params: 10, tokens_per_step: 8, config: {}, resumed_at: null });
  for (let i = 1; i <= 1000; i++) {
    m.write({ type: 'train', iter: i, loss: 2 + 8 * Math.exp(-i / 200) + 0.1 * Math.sin(i), lr: 6e-4, grad_norm: 1 + Math.exp(-i / 50), ms: 100, comm_ms: 0, tokens_per_s: 5000 + (i % 7), mfu: null, tokens: 8 * i });
  }
  const median = (png: boolean): number => {
    const times: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now();
      writeReportSync(out, { refreshSeconds: LIVE_REPORT_REFRESH_S, png });
      times.push(performance.now() - t0);
    }
    return times.sort((a, b) => a - b)[2]!;
  };
  const both = median(true);
  const htmlOnly = median(false);
  t.diagnostic(`per-eval rewrite for 1000 steps, median of 5: report.html ${htmlOnly.toFixed(0)} ms; with loss.png ${both.toFixed(0)} ms`);
  assert.ok(htmlOnly < 500, `report.html rewrite ${htmlOnly.toFixed(0)} ms`);
  assert.ok(both < 1500, `report.html + loss.png rewrite ${both.toFixed(0)} ms`);
});

test('a real training run: TensorBoard events equal metrics.jsonl; sample --record puts the samples in the report', async () => {
  const data = writePatternCorpus({ trainTokens: 4000, valTokens: 1000 });
  const out = path.join(root, 'train-run');
  const r = await nanogpt(tinyTrainArgs(data, out, ['--trainer_config.max_iters=4', '--trainer_config.eval_interval=2', '--trainer_config.lr_decay_iters=4']), { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /warning: (TensorBoard events|report\.html is) no longer/, 'both views kept up for the whole run');
  const records = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const events = readEvents(eventFiles(out));
  for (const e of events) assert.ok(!e.mismatch);
  const train = records.filter((x) => (x.type as unknown) === 'train');
  const evals = records.filter((x) => (x.type as unknown) === 'eval');
  assert.equal(train.length, 4);
  assert.equal(evals.length, 3);
  for (const x of train) {
    for (const [k, tag] of [['loss', 'train/loss'], ['lr', 'train/lr'], ['grad_norm', 'train/grad_norm'], ['tokens_per_s', 'train/tokens_per_s']] as const) {
      assert.equal(scalar(events, x.iter!, tag), Math.fround(x[k]!), `step ${x.iter} ${tag}`);
    }
  }
  for (const x of evals) {
    const ev = events.find((e) => e.step === x.iter && e.values?.some((v) => v.tag === 'eval/val_loss'))!;
    assert.equal(ev.values!.find((v) => v.tag === 'eval/val_loss')!.value, Math.fround(x.val_loss!));
    assert.equal(ev.values!.find((v) => v.tag === 'eval/train_loss')!.value, Math.fround(x.train_loss!));
  }
  assert.doesNotMatch(readFileSync(path.join(out, 'report.html'), 'utf8'), /http-equiv/, 'the finished run\'s report does not reload');

  const s = await nanogpt(['sample', '--ckpt_path', out, '--record', '--num_samples', '2', '--max_new_tokens', '5', '--prompt', 'A', '--seed', '3', '--json'], { timeoutMs: 60_000 });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, /recorded 2 samples in .*metrics\.jsonl/);
  const texts = (JSON.parse(s.stdout) as { samples: Array<{ text: string }> }).samples.map((x) => x.text);
  assert.equal(texts.length, 2, s.stdout);
  const page = readFileSync(path.join(out, 'report.html'), 'utf8');
  const shown = [...page.matchAll(/<pre class="sample">([^<]*)<\/pre>/g)].map((x) => x[1]!.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'"));
  assert.deepEqual(shown, texts);
  assert.match(page, /ckpt\.pt · temperature 0\.6 · top_k 200 · seed 3 · 5 new tokens at most/);

  // --record needs a run: a model file outside any out_dir is refused before anything is generated.
  const loose = path.join(root, 'loose');
  execFileSync('mkdir', ['-p', loose]);
  execFileSync('cp', [path.join(out, 'ckpt.pt'), loose]);
  const refused = await nanogpt(['sample', '--ckpt_path', path.join(loose, 'ckpt.pt'), '--record', '--max_new_tokens', '2']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /--record: no metrics\.jsonl beside .*loose\/ckpt\.pt[\s\S]*fix: pass the out_dir of a nanogpt train run/);
  assert.equal(refused.stdout, '');
});
