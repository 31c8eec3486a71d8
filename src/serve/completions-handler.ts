// POST /v1/completions once the body is parsed: runs the completion and answers as one JSON object, or as
// server-sent events in OpenAI's format (one `data: {chunk}` per piece of text, a chunk with each choice's
// finish_reason, optionally a usage chunk, then `data: [DONE]`). A client that goes away cancels its sequences at
// once, which frees their batch slots for the next step.
import type { ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { ApiError } from './api-error.js';
import { CompletionError, preparePrompts, runCompletion, type CompletionResult } from './completion.js';
import type { ServedModel } from './model.js';
import type { CompletionRequest } from './request.js';

export interface CompletionObserver {
  firstToken(seconds: number): void;
  done(result: CompletionResult | undefined, seconds: number): void;
}

function usage(r: CompletionResult): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens, total_tokens: r.usage.totalTokens };
}

function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof CompletionError) {
    if (err.kind === 'invalid') return new ApiError(400, err.message, 'invalid_request_error', err.param ?? null);
    if (err.kind === 'cancelled') return new ApiError(503, 'the request was cancelled: the server is shutting down', 'server_error', null, 'shutting_down');
    return new ApiError(500, err.message, 'server_error');
  }
  throw err;
}

/**
 * Answers one completion request. `shutdown` aborts it (grace period over); the client closing the connection
 * aborts it too. Resolves when the response has ended.
 */
export async function handleCompletion(res: ServerResponse, model: ServedModel, request: CompletionRequest, shutdown: AbortSignal, observe: CompletionObserver): Promise<void> {
  const started = performance.now();
  const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const modelId = model.info.id;
  const controller = new AbortController();
  const onShutdown = (): void => controller.abort();
  shutdown.addEventListener('abort', onShutdown);
  // 'close' on the response before it ended: the client is gone (or the socket broke). Cancel now, not at the end.
  const onClose = (): void => {
    if (!res.writableEnded) controller.abort();
  };
  res.on('close', onClose);
  let first = true;
  const markFirst = (): void => {
    if (first) observe.firstToken((performance.now() - started) / 1000);
    first = false;
  };
  try {
    // Prompts are tokenized before any answer is sent, so a prompt the model cannot take is a plain 400.
    const prepared = preparePrompts(model, request.params.prompts);
    if (!request.stream) {
      const result = await runCompletion(model, request.params, { onText: markFirst }, controller.signal, prepared);
      observe.done(result, (performance.now() - started) / 1000);
      const body = {
        id,
        object: 'text_completion',
        created,
        model: modelId,
        choices: result.choices.map((c) => ({ index: c.index, text: c.text, logprobs: null, finish_reason: c.finishReason })),
        usage: usage(result),
        ...(result.warnings.length ? { warnings: result.warnings } : {}),
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    // Warnings (a prompt cut to the context) go on the first chunk.
    let warnings: string[] | undefined = prepared.warnings.length ? prepared.warnings : undefined;
    const send = (choices: unknown[], extra: Record<string, unknown> = {}): void => {
      const chunk = { id, object: 'text_completion', created, model: modelId, choices, ...(warnings ? { warnings } : {}), ...extra };
      warnings = undefined; // only on the first chunk
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    let result: CompletionResult | undefined;
    try {
      result = await runCompletion(
        model,
        request.params,
        {
          onText: (index, text) => {
            markFirst();
            send([{ index, text, logprobs: null, finish_reason: null }]);
          },
          onChoiceEnd: (index, reason) => send([{ index, text: '', logprobs: null, finish_reason: reason }]),
        },
        controller.signal,
        prepared,
      );
    } catch (err) {
      const e = asApiError(err);
      if (!res.writableEnded && !res.destroyed) {
        // Headers are sent: the error goes in the stream, as OpenAI does.
        res.write(`data: ${JSON.stringify(e.body())}\n\n`);
        res.end();
      }
      observe.done(undefined, (performance.now() - started) / 1000);
      return;
    }
    observe.done(result, (performance.now() - started) / 1000);
    if (request.includeUsage) send([], { usage: usage(result) });
    res.end('data: [DONE]\n\n');
  } catch (err) {
    observe.done(undefined, (performance.now() - started) / 1000);
    const e = asApiError(err);
    if (!res.headersSent && !res.destroyed) res.writeHead(e.status, { 'content-type': 'application/json', ...e.headers }).end(JSON.stringify(e.body()));
  } finally {
    shutdown.removeEventListener('abort', onShutdown);
    res.off('close', onClose);
  }
}
