// The judge interface every stage shares: one generation in, one 1..6 helpfulness score out.
// A judgment that could not be read (an LLM reply cut off, refused, stating no choice or two
// different ones) is `valid: false` with a null score and an `invalidReason`: it is counted by
// reason and excluded from means, never turned into 0 or -1.
import type { InvalidReason } from './parse.ts';

export type { InvalidReason } from './parse.ts';

export interface JudgeInput {
  /** Stable id of the generation (the experiment uses `epoch:exampleId:sample`). */
  id: string;
  prompt: string;
  response: string;
  /** The dev set's reference answer, when there is one. */
  reference?: string;
  /** True when generation stopped at end-of-turn, false when it ran out of tokens (truncated). */
  endedWithEot?: boolean;
}

export interface Judgment {
  /** 1..6 on LIMA's helpfulness scale; null when the judgment is invalid. */
  score: number | null;
  valid: boolean;
  /** Why the judgment is invalid; present exactly when `valid` is false (see parse.ts readChoice). The rubric is never invalid. */
  invalidReason?: InvalidReason;
  /** The judge's raw output (the LLM's whole reply; the rubric's sub-score line). */
  raw: string;
  /** Why this score, in words (the LLM's reasoning; the rubric's arithmetic). */
  reason: string;
  /** Rubric sub-scores in [0, 1]. */
  subscores?: Record<string, number>;
  usage?: { promptTokens?: number; completionTokens?: number };
  /** True when the judgment came from the on-disk cache (no request made). */
  cached?: boolean;
}

export interface JudgeStats {
  /** HTTP requests sent (retries included). */
  requests: number;
  cacheHits: number;
  invalid: number;
}

export interface Judge {
  kind: 'rubric' | 'llm';
  /** One sentence in words: which judge (and, for the rubric, that it is a proxy for human or LLM judgment). */
  describe(): string;
  judge(input: JudgeInput): Promise<Judgment>;
  stats(): JudgeStats;
}
