// The thread that owns the model: loads it, then runs the continuous-batching scheduler, one step at a time,
// yielding to this thread's event loop between steps so submissions and cancellations from the HTTP thread land
// there. Forward passes are synchronous native calls; running them here keeps the HTTP thread's event loop free
// (health checks, SSE writes, 429s and new connections are answered while a step computes).
import { parentPort, workerData } from 'node:worker_threads';
import * as torch from '../torch/index.js';
import { GPT } from '../gpt/model.js';
import { loadModel } from '../train/checkpoint.js';
import { isUserError } from '../util/errors.js';
import { BatchScheduler } from './scheduler.js';
import type { FromWorker, ToWorker, WorkerData } from './protocol.js';

const port = parentPort!;
const data = workerData as WorkerData;
const post = (m: FromWorker): void => port.postMessage(m);

async function load(): Promise<{ model: GPT; kind: string }> {
  const src = data.source;
  if ('file' in src) {
    const loaded = await loadModel(src.file, { dropout: 0 });
    await loaded.reader.close();
    return { model: loaded.model, kind: loaded.kind };
  }
  torch.manualSeed(src.seed);
  return { model: new GPT({ ...src.randomInit, dropout: 0 }), kind: 'random-init' };
}

async function main(): Promise<void> {
  if (data.threads !== undefined) torch.setNumThreads(data.threads);
  let model: GPT;
  let kind: string;
  try {
    ({ model, kind } = await load());
  } catch (err) {
    const e = err as Error;
    post(isUserError(err) ? { type: 'load-error', problem: err.problem, fix: err.fix, userError: true, stack: undefined } : { type: 'load-error', problem: e.message, fix: undefined, userError: false, stack: e.stack });
    return;
  }
  const scheduler = new BatchScheduler(model, { maxBatch: data.maxBatch, bf16: data.bf16 });
  const c = model.config;
  post({
    type: 'ready',
    info: { id: data.source.id, kind, nLayer: c.nLayer, nHead: c.nHead, nEmbd: c.nEmbd, blockSize: c.blockSize, vocabSize: c.vocabSize, parameters: model.countParameters(), threads: torch.getNumThreads() },
  });

  let wake: (() => void) | undefined;
  let closing = false;
  port.on('message', (m: ToWorker) => {
    if (m.type === 'submit') {
      // The main thread validates requests; a bad one still fails alone rather than killing this thread.
      try {
        scheduler.submit(m.id, m.params);
      } catch (err) {
        post({ type: 'step', tokens: [], finished: [{ id: m.id, reason: 'error', error: (err as Error).message }], decodeRows: 0, prefills: 0, active: scheduler.activeCount, waiting: scheduler.waitingCount, ms: 0 });
      }
    }
    else if (m.type === 'cancel') {
      // Reported at once: with nothing left to step, no step report would tell the main thread the slot is free.
      if (scheduler.cancel(m.id)) post({ type: 'state', active: scheduler.activeCount, waiting: scheduler.waitingCount });
    }
    else closing = true;
    wake?.();
  });
  while (!closing) {
    if (!scheduler.hasWork()) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      continue;
    }
    const t0 = performance.now();
    const report = scheduler.step();
    post({ type: 'step', ...report, active: scheduler.activeCount, waiting: scheduler.waitingCount, ms: performance.now() - t0 });
    // Let messages in: a cancellation frees its slot before the next step, a new request joins it.
    await new Promise((resolve) => setImmediate(resolve));
  }
  scheduler.cancelAll();
  model.dispose();
  post({ type: 'closed' });
  port.close();
}

await main();
