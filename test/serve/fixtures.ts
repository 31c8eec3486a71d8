// Shared by the serve tests: a tiny GPT with GPT-2's vocabulary saved as a checkpoint, and a server on a free
// loopback port in this process (the model on its own thread, as `nanogpt serve` runs it).
import * as path from 'node:path';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { GPT2_VOCAB_SIZE, type GPTConfig } from '../../src/gpt/config.js';
import { saveModel } from '../../src/train/checkpoint.js';
import { ServedModel } from '../../src/serve/model.js';
import { CompletionServer, type ServerOptions } from '../../src/serve/server.js';

export const TINY: GPTConfig = { nLayer: 2, nHead: 2, nEmbd: 32, blockSize: 64, vocabSize: GPT2_VOCAB_SIZE, dropout: 0, bias: true };

/** A tiny model with weights spread enough (std 0.3) that sampling is not near-uniform. */
export function tinyModel(seed = 0): GPT {
  torch.manualSeed(seed);
  const model = new GPT(TINY);
  torch.noGrad(() => {
    for (const p of model.parameters()) if (p.ndim >= 2) p.normal_(0, 0.3);
  });
  return model;
}

export async function tinyCheckpoint(dir: string): Promise<string> {
  const file = path.join(dir, 'tiny.pt');
  const model = tinyModel();
  await saveModel(file, model);
  model.dispose();
  return file;
}

export interface TestServer {
  server: CompletionServer;
  model: ServedModel;
  url: string;
  close(): Promise<void>;
}

export async function startServer(ckpt: string, opts: Partial<ServerOptions> = {}, log: string[] = []): Promise<TestServer> {
  const maxBatch = opts.maxBatch ?? 16;
  const model = await ServedModel.load(ckpt, { maxBatch, threads: 1, log: (l) => log.push(l) });
  const server = await CompletionServer.listen({
    host: '127.0.0.1',
    port: 0,
    maxTokens: 256,
    maxBatch,
    maxQueue: 64,
    maxBodyBytes: 64 * 1024,
    maxSequencesPerRequest: 16,
    log: (l) => log.push(l),
    ...opts,
  });
  server.serve(model);
  return {
    server,
    model,
    url: server.url,
    close: async () => {
      await server.shutdown(2000);
      await model.close();
    },
  };
}

/** Polls `check` every 20 ms until it holds, failing after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
