// Sampling a response from a prompt with LIMA's decoding. With the KV cache each new token is
// one forward step over a single position (cost independent of how much was generated); without
// it (benchmarks only) every step re-runs the whole sequence.
import { mulberry32 } from '../util/rng.ts';
import type { GenerationConfig } from './config.ts';
import { sampleNext } from './sampling.ts';
import type { DecoderSession, PastState } from './session.ts';

export interface GenerateOptions {
  seed: number;
  /** End-of-turn token: generation stops after sampling it. */
  eot: number;
  /** More stop tokens (a foreign tokenizer's eos and end-of-turn ids), treated as `eot` is. */
  stopIds?: readonly number[];
  /** Default true. */
  useCache?: boolean;
  /** Also return each sampled token's log-probability under the model (GeneratedIds.logprobs). Default false. */
  logprobs?: boolean;
  /**
   * Only ids below this are ever sampled (default: the model's whole vocabulary). Set to the
   * tokenizer's size when the model's vocabulary is padded beyond it (e.g. 32,064 rows for a
   * 32,000-token tokenizer): an id the tokenizer cannot decode is never drawn, and log-probs are
   * over the ids that can be.
   */
  vocabLimit?: number;
}

export interface GeneratedIds {
  /** Sampled tokens, without the final end-of-turn (stop) token. */
  ids: number[];
  endedWithEot: boolean;
  /** Tokens sampled, the end-of-turn token included. */
  newTokens: number;
  /** Prompt tokens dropped from the left to fit the model context. */
  promptTrimmed: number;
  /**
   * With options.logprobs: log p(token | prompt, earlier tokens) in nats for each sampled token,
   * the stop token included (length newTokens), from the raw logits of the step that sampled it
   * (before repetition penalty, temperature and top-p).
   */
  logprobs?: number[];
}

/** log softmax(row)[index], computed in float64. */
function logSoftmaxAt(row: Float32Array, index: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return row[index]! - max - Math.log(sum);
}

/**
 * Fits prompt + new tokens into the context: keeps the end of the prompt (the latest turn and
 * the assistant marker), reserving up to half the context for the response.
 */
export function fitPrompt(promptIds: readonly number[], maxNewTokens: number, context: number): { prompt: number[]; maxNew: number } {
  const reserve = Math.min(maxNewTokens, Math.floor(context / 2));
  const keep = Math.min(promptIds.length, context - reserve);
  const prompt = promptIds.slice(promptIds.length - keep);
  return { prompt, maxNew: Math.min(maxNewTokens, context - prompt.length) };
}

export async function generateIds(session: DecoderSession, promptIds: readonly number[], cfg: GenerationConfig, options: GenerateOptions): Promise<GeneratedIds> {
  if (promptIds.length === 0) throw new Error('generate: empty prompt');
  const { vocab, context } = session.model;
  const limit = options.vocabLimit === undefined ? vocab : Math.min(vocab, options.vocabLimit);
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`generate: vocabLimit must be a positive integer, got ${options.vocabLimit}`);
  const { prompt, maxNew } = fitPrompt(promptIds, cfg.maxNewTokens, context);
  const rng = mulberry32(options.seed);
  const useCache = options.useCache ?? true;
  const generated: number[] = [];
  const logprobs: number[] | undefined = options.logprobs ? [] : undefined;
  let endedWithEot = false;

  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
  let past: PastState | undefined;
  let out = await session.run([prompt], [prompt.map(() => 1)], [range(0, prompt.length)]);
  for (let step = 0; step < maxNew; step++) {
    const seq = out.logits.length / vocab;
    const row = out.logits.subarray((seq - 1) * vocab, (seq - 1) * vocab + limit);
    const next = sampleNext(row, generated, cfg, rng);
    generated.push(next);
    logprobs?.push(logSoftmaxAt(row, next));
    if (next === options.eot || options.stopIds?.includes(next)) {
      endedWithEot = true;
      break;
    }
    if (step === maxNew - 1) break;
    const length = prompt.length + generated.length;
    if (useCache) {
      past = out.present;
      out = await session.run([[next]], [new Array<number>(length).fill(1)], [[length - 1]], past);
    } else {
      const all = [...prompt, ...generated];
      out = await session.run([all], [all.map(() => 1)], [range(0, all.length)]);
    }
  }
  return { ids: endedWithEot ? generated.slice(0, -1) : generated, endedWithEot, newTokens: generated.length, promptTrimmed: promptIds.length - prompt.length, ...(logprobs ? { logprobs } : {}) };
}
