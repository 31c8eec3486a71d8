/**
 * Worker-thread side of the tokenize pool: receives batches of document texts, answers with their uint16
 * tokens (EOT after each document). The buffers are transferred, not copied, back to the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { Gpt2Tokenizer } from './tokenizer.js';
import type { WorkerReply, WorkerRequest } from './tokenize-pool.js';
import { jsonlTexts } from './jsonl.js';
import type { WorkerUnit } from './source.js';
import { decodeText } from './utf8.js';
import { isUserError } from '../util/errors.js';

const port = parentPort;
if (!port) throw new Error('tokenize-worker.js must be started as a worker thread');

// The pool sends the compiled BPE module once it has it; requests that arrive earlier wait for the encoder, in
// arrival order (they all await the same promise).
let receiveModule: (m: WebAssembly.Module) => void = () => undefined;
let received = false;
const opened = new Promise<WebAssembly.Module>((resolve) => (receiveModule = resolve)).then((m) => Gpt2Tokenizer.open(m));
opened.catch(() => undefined); // reported to each request below

/** The documents of a unit, read here rather than on the main thread. */
async function unitTexts(unit: WorkerUnit): Promise<string[]> {
  if (unit.kind === 'jsonl-lines') return jsonlTexts(unit.bytes, unit.file, unit.firstLine, unit.record).texts;
  // Loaded on first use: workers of corpora without Parquet never load the reader.
  const { readParquetRows } = await import('./parquet.js');
  return (await readParquetRows(unit)).texts;
}

port.on('message', async (msg: WorkerRequest) => {
  if (msg.type === 'init') {
    received = true;
    receiveModule(msg.bpeModule);
    return;
  }
  if (msg.type === 'close') {
    // Free the WASM encoder before exiting: it is memory the GC does not track. A worker closed before it got
    // its module has nothing to free.
    if (received) (await opened.catch(() => undefined))?.free();
    port.close();
    return;
  }
  try {
    const tokenizer = await opened;
    let texts: string[];
    let bytes = 0;
    if (msg.type === 'encode-unit') {
      texts = await unitTexts(msg.unit);
      for (const t of texts) bytes += Buffer.byteLength(t, 'utf8');
    } else {
      texts = msg.texts.map((t, i) => {
        if (typeof t !== 'string') {
          bytes += t.byteLength;
          return decodeText(t, msg.origins[i] ?? `document ${i}`);
        }
        bytes += Buffer.byteLength(t, 'utf8');
        return t;
      });
    }
    const { tokens, counts } = tokenizer.encodeDocuments(texts);
    const reply: WorkerReply = { id: msg.id, tokens, counts, bytes };
    port.postMessage(reply, [tokens.buffer as ArrayBuffer, counts.buffer as ArrayBuffer]);
  } catch (err) {
    const reply: WorkerReply = isUserError(err)
      ? { id: msg.id, error: err.message, problem: err.problem, fix: err.fix }
      : { id: msg.id, error: (err as Error)?.stack ?? String(err) };
    port.postMessage(reply);
  }
});
