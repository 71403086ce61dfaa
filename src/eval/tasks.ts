// What the pool's workers receive and send back (structured-clone friendly: plain data only).
import type { ModelConfig } from '../model/config.ts';
import type { GenerationConfig } from './config.ts';
import type { GeneratedIds } from './generate.ts';
import type { ExampleScore, ScoringExample } from './scoring.ts';

interface TaskBase {
  onnxPath: string;
  model: ModelConfig;
  /** onnxruntime intra-op threads (cores / workers). */
  threads: number;
  /** Test hook: the worker throws instead of working. */
  injectFailure?: boolean;
  /** Int32Array over a SharedArrayBuffer: [0] != 0 means the run failed, skip the work. */
  cancel?: Int32Array;
  /** Content hash of the model file (queue workers): a new file at the same path gets a new session. */
  modelSha256?: string;
}

export interface PerplexityTask extends TaskBase {
  kind: 'perplexity';
  examples: ScoringExample[];
}

export interface GenerationTask extends TaskBase {
  kind: 'generation';
  promptIds: number[];
  eot: number;
  /** More stop ids (GenerateOptions.stopIds); absent for our own tokenizer, whose only stop is eot. */
  stopIds?: number[];
  /** GenerateOptions.vocabLimit: present only when the tokenizer has fewer ids than the model's vocabulary. */
  vocabLimit?: number;
  seed: number;
  generation: GenerationConfig;
}

export type EvalTask = PerplexityTask | GenerationTask;

export type EvalTaskResult = { kind: 'perplexity'; scores: ExampleScore[] } | { kind: 'generation'; output: GeneratedIds } | { kind: 'cancelled' };
