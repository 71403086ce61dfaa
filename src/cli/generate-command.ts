// `lima-harness generate --model PATH --prompt TEXT`: the continuation of a prompt under any
// checkpoint this harness reads (ours, an HF GPT-2/Llama/Mistral folder or a llama GGUF file, with
// our tokenizer or its own through @huggingface/tokenizers and its chat template;
// src/eval/eval-tokenizer.ts), decoded with the
// evaluation's own code (src/eval/generate.ts: KV cache, repetition penalty, temperature, top-p,
// one seeded draw per token; temperature 0 = greedy).
import { parseArgs } from 'node:util';
import { loadAnyCheckpoint } from '../checkpoint/index.ts';
import { checkpointTokenizer } from '../eval/checkpoint-tokenizer.ts';
import { decodeContinuation } from '../eval/eval-tokenizer.ts';
import { exportOnnxBytes } from '../model/onnx-export.ts';
import { DecoderSession } from '../eval/session.ts';
import { generateIds } from '../eval/generate.ts';
import type { GenerationConfig } from '../eval/config.ts';

const USAGE = `Usage: lima-harness generate --model PATH --prompt TEXT [options]

Prints the continuation of TEXT under the model at PATH: a checkpoint of this harness
(checkpoints/<run>/epoch-NN), a Hugging Face GPT-2, Llama or Mistral folder (config.json,
model.safetensors or a sharded set, tokenizer.json: this harness's or any other, read with
@huggingface/tokenizers) or a llama GGUF file (its tokenizer and chat template from its metadata).
The prompt is tokenized as plain text (with the BOS the tokenizer adds, if any, as llama.cpp
does; ours adds none), or with --chat as one user turn in the checkpoint's chat format (ours;
else the chat_template of tokenizer_config.json or the GGUF file, else a plain Alpaca-style
template), so the continuation is the
assistant's answer. Generation stops at an end-of-turn or end-of-sequence token or after N new
tokens; a prompt longer than the context minus the reserved new tokens loses its beginning.
  --model PATH             checkpoint folder or .gguf file
  --prompt TEXT            the prompt
  --max-new-tokens N       at most N new tokens (default 64; at most half the context is reserved)
  --temperature T          0 = greedy (default), else sampling at temperature T (<= 100)
  --top-p P                nucleus sampling mass in (0, 1] (default 1)
  --repetition-penalty R   CTRL-style penalty on tokens already generated, >= 1 (default 1 = off)
  --seed S                 sampling seed, a non-negative integer (default 0; greedy ignores it)
  --chat                   wrap the prompt as a user turn
  --json                   print one JSON line {continuation, ids, newTokens, endedWithEot, promptTokens, promptTrimmed, model, chatFormat} instead
  --threads N              onnxruntime threads (default 1)
  -h, --help               this help`;

export class GenerateUsageError extends Error {}

function numberFlag(value: string | undefined, flag: string, fallback: number, check: (n: number) => boolean, expected: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !check(n)) throw new GenerateUsageError(`${flag}: expected ${expected}, got ${JSON.stringify(value)}`);
  return n;
}

export async function generateCommand(argv: string[], log: (text: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      seed: { type: 'string' },
      chat: { type: 'boolean' },
      json: { type: 'boolean' },
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    log(USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new GenerateUsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n\n${USAGE}`);
  if (!values.model) throw new GenerateUsageError(`--model is required\n\n${USAGE}`);
  if (values.prompt === undefined || values.prompt === '') throw new GenerateUsageError(`--prompt is required (a non-empty text)\n\n${USAGE}`);
  const int = (n: number) => Number.isInteger(n);
  const cfg: GenerationConfig = {
    samples: 1,
    maxNewTokens: numberFlag(values['max-new-tokens'], '--max-new-tokens', 64, (n) => int(n) && n >= 1, 'a positive integer'),
    temperature: numberFlag(values.temperature, '--temperature', 0, (n) => n === 0 || (n >= 1e-3 && n <= 100), '0 (greedy) or a number in [0.001, 100]'),
    topP: numberFlag(values['top-p'], '--top-p', 1, (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    repetitionPenalty: numberFlag(values['repetition-penalty'], '--repetition-penalty', 1, (n) => n >= 1 && n <= 100, 'a number in [1, 100]'),
  };
  const seed = numberFlag(values.seed, '--seed', 0, (n) => int(n) && n >= 0 && n <= 0xffffffff, 'an integer in 0..4294967295');
  const threads = numberFlag(values.threads, '--threads', 1, (n) => int(n) && n >= 1, 'a positive integer');

  const ck = await loadAnyCheckpoint(values.model);
  const tok = await checkpointTokenizer(ck, values.model);
  if (tok.vocabSize > ck.model.vocab) throw new Error(`${values.model}: the tokenizer has ${tok.vocabSize} tokens, the model's vocabulary only ${ck.model.vocab}`);
  const promptIds = values.chat ? tok.encodePrompt([{ role: 'user', content: values.prompt }]) : tok.encodeText(values.prompt);
  if (promptIds.length === 0) throw new GenerateUsageError('--prompt: the prompt encodes to no tokens');
  const session = await DecoderSession.create(exportOnnxBytes(ck.model, ck.weights), ck.model, { threads });
  let out;
  try {
    out = await generateIds(session, promptIds, cfg, { seed, eot: tok.stopIds[0]!, stopIds: tok.stopIds.slice(1), vocabLimit: tok.vocabSize });
  } finally {
    await session.release();
  }
  // The text after the decoded prompt (a SentencePiece continuation keeps its leading space).
  const continuation = decodeContinuation(tok, promptIds, out.ids, { skipSpecial: true });
  if (values.json) {
    log(JSON.stringify({ continuation, ids: out.ids, newTokens: out.newTokens, endedWithEot: out.endedWithEot, promptTokens: promptIds.length, promptTrimmed: out.promptTrimmed, model: values.model, ...(values.chat ? { chatFormat: tok.description } : {}) }));
  } else {
    log(continuation);
  }
  return 0;
}
