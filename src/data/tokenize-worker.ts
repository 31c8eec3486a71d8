/**
 * Worker-thread side of the tokenize pool: receives batches of document texts, answers with their uint16
 * tokens (EOT after each document). The buffers are transferred, not copied, back to the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { Gpt2Tokenizer } from './tokenizer.js';
import type { WorkerReply, WorkerRequest } from './tokenize-pool.js';

const port = parentPort;
if (!port) throw new Error('tokenize-worker.js must be started as a worker thread');

const tokenizer = new Gpt2Tokenizer();

port.on('message', (msg: WorkerRequest) => {
  if (msg.type === 'close') {
    // Free the WASM encoder before exiting: it is memory the GC does not track.
    tokenizer.free();
    port.close();
    return;
  }
  try {
    const { tokens, counts } = tokenizer.encodeDocuments(msg.texts);
    const reply: WorkerReply = { id: msg.id, tokens, counts };
    port.postMessage(reply, [tokens.buffer as ArrayBuffer, counts.buffer as ArrayBuffer]);
  } catch (err) {
    const reply: WorkerReply = { id: msg.id, error: (err as Error)?.stack ?? String(err) };
    port.postMessage(reply);
  }
});
