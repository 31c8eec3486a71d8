import { readBoundedFile, READ_LIMITS } from '../../io/bounded-read.js';
import { isUserError, UserError } from '../../util/errors.js';

/**
 * How an Alpaca record (instruction / input / output) becomes one training document: the prompt for its case
 * (with or without an input) with {instruction} and {input} filled in, then the output. The shape and key names
 * follow the widely used alpaca-lora template files, so those files load unchanged.
 */
export interface AlpacaTemplate {
  prompt_input: string;
  prompt_no_input: string;
}

/** The Stanford Alpaca prompt format. */
export const DEFAULT_ALPACA_TEMPLATE: AlpacaTemplate = {
  prompt_input:
    'Below is an instruction that describes a task, paired with an input that provides further context. ' +
    'Write a response that appropriately completes the request.\n\n' +
    '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n',
  prompt_no_input:
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
    '### Instruction:\n{instruction}\n\n### Response:\n',
};

/** Reads a template file: JSON with string keys prompt_input and prompt_no_input (other keys are ignored). */
export async function loadAlpacaTemplate(file: string): Promise<AlpacaTemplate> {
  let text: string;
  try {
    text = (await readBoundedFile(file, READ_LIMITS.config, 'template')).toString('utf8');
  } catch (err) {
    if (isUserError(err)) throw err;
    throw new UserError(`cannot read the template ${file}: ${(err as Error).message}`, 'pass an existing JSON file to --template');
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new UserError(`the template ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const rec = obj as Record<string, unknown>;
  for (const key of ['prompt_input', 'prompt_no_input'] as const) {
    if (typeof rec?.[key] !== 'string') {
      throw new UserError(
        `the template ${file} has no string '${key}'`,
        'a template is JSON with "prompt_input" and "prompt_no_input"; use {instruction} and {input} as placeholders',
      );
    }
  }
  return { prompt_input: rec.prompt_input as string, prompt_no_input: rec.prompt_no_input as string };
}

function field(rec: Record<string, unknown>, key: string, origin: string, required: boolean): string {
  const v = rec[key];
  if (v === undefined || v === null) {
    if (!required) return '';
    throw new UserError(
      `${origin}: Alpaca record has no '${key}' field (fields: ${Object.keys(rec).join(', ') || 'none'})`,
      'Alpaca records need "instruction" and "output" ("input" is optional)',
    );
  }
  if (typeof v !== 'string') throw new UserError(`${origin}: Alpaca field '${key}' must be a string, got ${typeof v}`);
  return v;
}

/** Turns one record into a document. `origin` ("file.jsonl:12") names the record in errors. */
export function formatAlpaca(record: unknown, template: AlpacaTemplate, origin: string): string {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new UserError(`${origin}: an Alpaca record must be a JSON object`);
  }
  const rec = record as Record<string, unknown>;
  const instruction = field(rec, 'instruction', origin, true);
  const input = field(rec, 'input', origin, false);
  const output = field(rec, 'output', origin, true);
  const prompt = input.trim() === '' ? template.prompt_no_input : template.prompt_input;
  // One pass over the template only: text inside the instruction that happens to read "{input}" stays as is.
  return prompt.replace(/\{(instruction|input)\}/g, (_, k: string) => (k === 'instruction' ? instruction : input)) + output;
}
