// Evaluation settings: the worker pool, scoring batch size and LIMA's decoding defaults
// (nucleus p = 0.9, temperature 0.7, repetition penalty 1.2).
import { ConfigError, expectBoolean, expectNumber, expectObject, expectString } from '../util/validate.ts';
import type { Stride } from './heldout.ts';

export interface GenerationConfig {
  /** Samples per dev prompt (LIMA's ablations used 5). */
  samples: number;
  topP: number;
  temperature: number;
  /** CTRL-style penalty on tokens already generated (1 = off). */
  repetitionPenalty: number;
  maxNewTokens: number;
}

export interface EvalConfig {
  /** Worker threads; 'auto' = CPU cores. */
  workers: number | 'auto';
  /** Tokens (padded) per scoring batch. */
  batchTokens: number;
  /**
   * Scoring window in tokens (at most the model's context). A held-out prompt longer than it is
   * cut from the left; an answer longer than it is scored in rolling windows (src/eval/heldout.ts).
   */
  maxLength: number;
  /**
   * Answer tokens newly scored per rolling window: "disjoint" (maxLength - 1, lm-evaluation-harness)
   * or a smaller number for more context per token at more cost (Hugging Face's strided window).
   */
  stride: Stride;
  generation: GenerationConfig;
  /**
   * Evaluate each checkpoint with one single-threaded worker while training goes on (training on
   * tfjs-wasm uses one core). Results are the same either way; only the timing changes.
   */
  overlapTraining: boolean;
  /**
   * Redis URL of a BullMQ evaluation queue (redis://[:PASSWORD@]HOST:PORT or rediss:// for TLS), or
   * null for the local pool. Not part of any result's identity: a run may switch either way.
   */
  queue: string | null;
  /** Pool tasks (scoring batches or single generations) of one checkpoint per queue job. */
  queueTasksPerJob: number;
}

export const defaultGenerationConfig: GenerationConfig = { samples: 1, topP: 0.9, temperature: 0.7, repetitionPenalty: 1.2, maxNewTokens: 64 };

export const defaultEvalConfig: EvalConfig = { workers: 'auto', batchTokens: 2048, maxLength: 256, stride: 'disjoint', generation: defaultGenerationConfig, overlapTraining: false, queue: null, queueTasksPerJob: 8 };

const EVAL_KEYS = ['workers', 'batchTokens', 'maxLength', 'stride', 'generation', 'overlapTraining', 'queue', 'queueTasksPerJob'] as const;
const GENERATION_KEYS = ['samples', 'topP', 'temperature', 'repetitionPenalty', 'maxNewTokens'] as const;

export function validateGenerationConfig(c: unknown, where: string): GenerationConfig {
  const obj = expectObject(c, where, GENERATION_KEYS);
  for (const key of GENERATION_KEYS) if (obj[key] === undefined) throw new ConfigError(`${where}.${key}: missing`);
  return {
    samples: expectNumber(obj.samples, `${where}.samples`, { integer: true, min: 1, max: 100 }),
    topP: expectNumber(obj.topP, `${where}.topP`, { min: 1e-6, max: 1 }),
    // Temperature 0 would be greedy decoding; this harness samples, so it must be positive.
    temperature: expectNumber(obj.temperature, `${where}.temperature`, { min: 1e-3, max: 100 }),
    repetitionPenalty: expectNumber(obj.repetitionPenalty, `${where}.repetitionPenalty`, { min: 1, max: 100 }),
    maxNewTokens: expectNumber(obj.maxNewTokens, `${where}.maxNewTokens`, { integer: true, min: 1, max: 1_000_000 }),
  };
}

/** Validates a complete eval config (callers merge defaults first); errors name the key path. */
export function validateEvalConfig(c: unknown, where: string): EvalConfig {
  const obj = expectObject(c, where, EVAL_KEYS);
  for (const key of EVAL_KEYS) if (obj[key] === undefined) throw new ConfigError(`${where}.${key}: missing`);
  const workers = obj.workers === 'auto' ? 'auto' : expectNumber(obj.workers, `${where}.workers (a positive integer or "auto")`, { integer: true, min: 1, max: 256 });
  const maxLength = expectNumber(obj.maxLength, `${where}.maxLength`, { integer: true, min: 2 });
  const stride =
    obj.stride === 'disjoint' ? 'disjoint' : expectNumber(obj.stride, `${where}.stride ("disjoint" or a number of tokens)`, { integer: true, min: 1, max: maxLength - 1 });
  return {
    workers,
    batchTokens: expectNumber(obj.batchTokens, `${where}.batchTokens`, { integer: true, min: 1 }),
    maxLength,
    stride,
    generation: validateGenerationConfig(obj.generation, `${where}.generation`),
    overlapTraining: expectBoolean(obj.overlapTraining, `${where}.overlapTraining`),
    queue: obj.queue === null ? null : validateQueueUrl(obj.queue, `${where}.queue`),
    queueTasksPerJob: expectNumber(obj.queueTasksPerJob, `${where}.queueTasksPerJob`, { integer: true, min: 1, max: 10_000 }),
  };
}

/**
 * Checks a queue URL's scheme and shape. The error never repeats the URL: it may hold a password.
 */
export function validateQueueUrl(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new ConfigError(`${where}: expected a redis:// or rediss:// URL string, or null for the local pool`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${where}: not a valid URL (expected redis://[:PASSWORD@]HOST:PORT or rediss://...)`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new ConfigError(`${where}: expected a redis:// or rediss:// URL, got the scheme ${JSON.stringify(url.protocol)}`);
  if (url.hostname === '') throw new ConfigError(`${where}: the URL names no host`);
  expectString(value, where);
  return value;
}
