// The analysis stage's contract: what the pipeline hands in (AnalysisInput, DrilldownExample)
// and what comes out (Metrics, serialised verbatim as metrics.json; CI and other tools read
// its keys, so they are fixed).

export interface AnalysisInput {
  epochs: Array<{ epoch: number; trainLoss: number }>;
  /** Held-out, per example, response tokens only. */
  perplexity: Array<{ epoch: number; exampleId: string; nll: number; tokens: number; bytes: number }>;
  /**
   * Dev generations' judged scores: 1..6, null = invalid judgment. `invalidReason` says why a
   * null score is invalid (the judge's reason, e.g. "truncated", "no-choice"); only with a null
   * score; a null score without one is counted as "unspecified".
   */
  quality: Array<{ epoch: number; exampleId: string; sample: number; score: number | null; invalidReason?: string }>;
  /** Inclusive epoch window the selection rule looks in (default [5, 10]). */
  window: [number, number];
  /** Bootstrap resamples, e.g. 1000. */
  bootstrap: number;
  seed: number;
  judge: { kind: string; description: string; formula?: string };
  data: { train: number; heldout: number; dev: number; sources?: Record<string, unknown> };
  /** Training backend, eval runtime. */
  backend: Record<string, unknown>;
  durationsSeconds: Record<string, number>;
}

/** The durations key of evaluation that ran on another core during training (not wall time of its own). */
export const EVAL_DURING_TRAINING = 'evalDuringTraining';

export interface DrilldownExample {
  exampleId: string;
  prompt: string;
  reference: string;
  generations: Array<{ epoch: number; sample: number; response: string; score: number | null; invalidReason?: string }>;
}

/** A figure that may be undefined (no data, constant vector): null in JSON, never NaN. */
export type Num = number | null;

export interface EpochMetrics {
  epoch: number;
  /** exp(sum nll / sum tokens) over held-out examples. */
  perplexity: Num;
  /** sum nll / ln 2 / sum bytes. */
  bitsPerByte: Num;
  quality: {
    /** Mean over dev examples of each example's mean over its valid samples. */
    mean: Num;
    /** 95% percentile bootstrap interval over dev examples. */
    ciLow: Num;
    ciHigh: Num;
    /** Dev examples with at least one valid judgment. */
    n: number;
    /** Invalid (null) judgments at this epoch. */
    invalid: number;
    /** Invalid judgments at this epoch by reason (keys sorted; a reason that did not occur is absent, i.e. 0); the counts sum to `invalid`. */
    invalidByReason: Record<string, number>;
  };
  trainLoss: Num;
}

export interface CorrelationFigure {
  r: Num;
  ciLow: Num;
  ciHigh: Num;
  /** Two-sided permutation p-value over pairings of epochs. */
  p: Num;
}

export interface Alternative {
  rule: string;
  epoch: number | null;
  quality: Num;
  perplexity: Num;
}

export interface Metrics {
  epochs: EpochMetrics[];
  correlation: {
    pearson: CorrelationFigure;
    spearman: CorrelationFigure;
    kendall: CorrelationFigure;
    summary: string;
  };
  selection: {
    window: [number, number];
    epoch: number | null;
    rule: string;
    alternatives: Alternative[];
    qualityLostByPerplexity: { mean: Num; ciLow: Num; ciHigh: Num };
    /** Epoch (as a string key) -> fraction of bootstrap resamples in which the rule picks it. */
    stability: Record<string, number>;
  };
  judge: { kind: string; description: string; formula?: string };
  data: { train: number; heldout: number; dev: number };
  backend: Record<string, unknown>;
  durationsSeconds: Record<string, number>;
}
