// The analysis stage's contract: what the pipeline hands in (AnalysisInput, DrilldownExample)
// and what comes out (Metrics, serialised verbatim as metrics.json; CI and other tools read
// its keys, so they are fixed).
import type { HeldoutFit } from '../eval/heldout.ts';

export interface AnalysisInput {
  /**
   * Mean training loss per epoch (nats per response token). Epoch 0 is the base model before
   * any fine-tuning: its trainLoss is its pretraining loss, or null when there is none. Null is
   * accepted at any epoch (a checkpoint series imported from another trainer may have logged no
   * loss before a checkpoint). An epoch is a non-negative number: a position in an imported
   * series may be fractional (a checkpoint saved by steps). `trainer`, when given, is copied
   * into that epoch's metrics as is; so is `checkpoint`, the path of the checkpoint folder or
   * file evaluated at that epoch (an imported series: relative to the working directory, as the
   * user would name it), a non-empty string.
   */
  epochs: Array<{ epoch: number; trainLoss: number | null; trainer?: TrainerLog; checkpoint?: string }>;
  /**
   * What the epoch numbers count (an imported series, src/checkpoint/series.ts): 'epoch'
   * (trainer_state.json epochs), 'step' (trainer steps or the numbers in GGUF file names), or
   * 'position' when a series mixes both. Copied into metrics.json; absent = 'epoch'.
   */
  positionUnit?: PositionUnit;
  /**
   * Held-out, per example, response tokens only. Rows with epoch 0 (here and in `quality`) are
   * the base model: analyze() evaluates them into Metrics.base and leaves them out of every
   * statistic across epochs.
   */
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
  /** Level of the percentile intervals, in (0, 1); default DEFAULT_CONFIDENCE (0.95). */
  confidence?: number;
  /** Two-sided permutation p must be below this for the summary to state a direction; default DEFAULT_ALPHA (0.05). */
  alpha?: number;
  /** Share of undefined bootstrap replicates above which an interval is unreliable, in [0, 1]; default DEFAULT_MAX_UNDEFINED_SHARE (0.05). */
  maxUndefinedShare?: number;
  seed: number;
  judge: { kind: string; description: string; formula?: string };
  data: { train: number; heldout: number; dev: number; sources?: Record<string, unknown> };
  /** How the held-out set fitted the scoring window (src/eval/heldout.ts); copied into metrics.json. */
  heldoutCoverage?: HeldoutCoverageFigures;
  /** The chat format each checkpoint was evaluated in (src/eval/eval-tokenizer.ts); copied into metrics.json. */
  chatFormat?: ChatFormatFigures[];
  /** The pretrained base's record (src/train/base.ts base.json, summarised); copied into metrics.json. */
  pretraining?: PretrainingFigures;
  /** Training backend, eval runtime. */
  backend: Record<string, unknown>;
  durationsSeconds: Record<string, number>;
}

/** How the base (epoch 0) was pretrained: text, length, losses (nats per token) and time. */
export interface PretrainingFigures {
  /** Content hash of the base (its directory under checkpoints/bases/ is the first 16 characters). */
  hash: string;
  params: number;
  documents: { train: number; validation: number };
  tokens: { train: number; validation: number };
  /** Pretraining documents dropped because their title or first line is a held-out or dev question. */
  droppedAsHeldoutOrDev: number;
  steps: number;
  epochs: number;
  trainLoss: number;
  validationLoss: number | null;
  seconds: number;
  tokensPerSec: number;
}

/**
 * What another trainer logged up to a checkpoint (trainer_state.json's log_history, the last
 * entries at or before the checkpoint's step): its training loss and eval loss (nats per
 * token, its own data and masking), null when it logged none by then, and the checkpoint's step.
 */
export interface TrainerLog {
  loss: number | null;
  evalLoss: number | null;
  step: number;
}

/** What the epoch axis counts (AnalysisInput.positionUnit). */
export type PositionUnit = 'epoch' | 'step' | 'position';

export const DEFAULT_CONFIDENCE = 0.95;
export const DEFAULT_ALPHA = 0.05;
export const DEFAULT_MAX_UNDEFINED_SHARE = 0.05;

/** The durations key of evaluation that ran on another core during training (not wall time of its own). */
export const EVAL_DURING_TRAINING = 'evalDuringTraining';

export interface DrilldownExample {
  exampleId: string;
  prompt: string;
  reference: string;
  generations: Array<{ epoch: number; sample: number; response: string; score: number | null; invalidReason?: string }>;
}

/** How the held-out set fitted the scoring window (defined by the evaluation stage). */
export type HeldoutCoverageFigures = HeldoutFit;

/**
 * A chat format (tokenizer + template) the evaluation used, and the epochs evaluated in it:
 * e.g. "chat template from tokenizer_config.json (sha256 ...)" or our own chat format.
 */
export interface ChatFormatFigures {
  description: string;
  epochs: number[];
}

/** A figure that may be undefined (no data, constant vector): null in JSON, never NaN. */
export type Num = number | null;

/**
 * Why a bootstrap replicate of a statistic was undefined: in that resample quality (or
 * perplexity) was the same at every paired epoch, an epoch had no valid judgment (or no
 * held-out tokens), or fewer than 3 epochs have both figures at all.
 */
export type UndefinedReason = 'constantQuality' | 'constantPerplexity' | 'noValidJudgment' | 'noHeldoutTokens' | 'tooFewEpochs';

/** What a bootstrap interval rests on. Undefined replicates are left out of the interval, never hidden. */
export interface ReplicateCount {
  /** Bootstrap resamples drawn (analysis.bootstrap). */
  replicates: number;
  /** Resamples in which the statistic was undefined; the interval is over the other ones. */
  undefinedReplicates: number;
  /** The undefined ones by cause (only causes that occurred; the counts add up to undefinedReplicates). */
  undefinedByReason: Partial<Record<UndefinedReason, number>>;
  /** undefinedReplicates / replicates > analysis.maxUndefinedShare: do not trust the interval. */
  intervalUnreliable: boolean;
}

/** A percentile bootstrap interval of held-out perplexity (same units as perplexity) and what it rests on. */
export type PerplexityInterval = { low: Num; high: Num } & ReplicateCount;

export interface EpochMetrics {
  epoch: number;
  /** exp(sum nll / sum tokens) over held-out examples. */
  perplexity: Num;
  /**
   * Percentile bootstrap interval (analysis.confidence, analysis.bootstrap resamples) of
   * `perplexity` over held-out examples: each resample draws the held-out examples with
   * replacement (one draw for every epoch) and takes exp(sum nll / sum tokens) over it. A
   * resample with no tokens is undefined ('noHeldoutTokens'). low/high are null when
   * `perplexity` is. Its draws come from their own seed (analysis.seed under
   * 'analysis', 'perplexity-ci'; the base row's under 'analysis', 'perplexity-ci', 'base'), so
   * adding it left every other figure as it was.
   */
  perplexityCi: PerplexityInterval;
  /** sum nll / ln 2 / sum bytes. */
  bitsPerByte: Num;
  quality: {
    /** Mean over dev examples of each example's mean over its valid samples. */
    mean: Num;
    /** Percentile bootstrap interval (analysis.confidence) over dev examples. */
    ciLow: Num;
    ciHigh: Num;
    /** Dev examples with at least one valid judgment. */
    n: number;
    /** Invalid (null) judgments at this epoch. */
    invalid: number;
    /** Invalid judgments at this epoch by reason (keys sorted; a reason that did not occur is absent, i.e. 0); the counts sum to `invalid`. */
    invalidByReason: Record<string, number>;
  } & ReplicateCount;
  trainLoss: Num;
  /** Present for an imported checkpoint series only: what its trainer logged (TrainerLog). */
  trainer?: TrainerLog;
  /** Present when the pipeline named it (imported series): the checkpoint folder or file to ship for this epoch, as a path relative to the working directory. */
  checkpoint?: string;
}

export interface CorrelationFigure extends ReplicateCount {
  r: Num;
  /** Percentile bootstrap interval (analysis.confidence) over held-out and dev examples; the epochs are fixed. */
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

/**
 * The base model (epoch 0: the weights fine-tuning starts from), evaluated exactly like an
 * epoch (same figures, same bootstrap settings) and reported as the reference row. It is in no
 * statistic across epochs: the correlation, every selection rule and alternative (lowest
 * perplexity included), qualityLostByPerplexity and the selection stability are over the
 * fine-tuning epochs only, as in LIMA, and `Metrics.epochs` holds fine-tuning epochs only, so
 * its indices (`epochs.N.*`) do not move when a base row is added.
 */
export interface BaseMetrics extends EpochMetrics {
  epoch: 0;
  /** Always true: marks the row as a reference, not a candidate. */
  reference: true;
  /** What fine-tuning changed at the selected epoch; null when no epoch was selected. */
  change: BaseChange | null;
  /** The base row and the change in words (plain text; the report escapes it). */
  summary: string;
}

/**
 * The selected epoch against the base. The bootstrap draws one resample of dev examples
 * (held-out examples) and scores both models on it, i.e. paired by example; its seed is derived
 * from analysis.seed under its own label, so it does not disturb the other intervals. The
 * selected epoch was chosen on these same dev examples, so the quality change leans optimistic.
 */
export interface BaseChange {
  /** The fine-tuning epoch compared with the base: selection.epoch. */
  epoch: number;
  /** Mean dev quality of the selected epoch minus that of the base (1..6 scale points), with its paired bootstrap interval. */
  quality: { mean: Num; ciLow: Num; ciHigh: Num } & ReplicateCount;
  /** Held-out perplexity of the selected epoch divided by that of the base (< 1: fine-tuning lowered it), with its paired bootstrap interval. */
  perplexityRatio: { value: Num; ciLow: Num; ciHigh: Num } & ReplicateCount;
}

export interface Metrics {
  /** Fine-tuning epochs only (epoch >= 1), ascending; the base model is `base`. */
  epochs: EpochMetrics[];
  /** The base model as a reference row: present only when the input had epoch-0 rows. */
  base?: BaseMetrics;
  correlation: {
    pearson: CorrelationFigure;
    spearman: CorrelationFigure;
    kendall: CorrelationFigure;
    /** Epochs that have both figures: the points each r is computed over. */
    pairedEpochs: number;
    summary: string;
  };
  selection: {
    window: [number, number];
    epoch: number | null;
    rule: string;
    alternatives: Alternative[];
    qualityLostByPerplexity: { mean: Num; ciLow: Num; ciHigh: Num } & ReplicateCount;
    /** Epoch (as a string key) -> fraction of bootstrap resamples in which the rule picks it. */
    stability: Record<string, number>;
    /**
     * Present only when the trainer's eval_loss (EpochMetrics.trainer.evalLoss) is known at every
     * epoch in the window: mean dev quality of the selected epoch minus that of the epoch with
     * the lowest trainer eval_loss (the alternative rule of that name, over every epoch with an
     * eval_loss; what load_best_model_at_end with metric_for_best_model='loss' picks), with its
     * bootstrap interval (the same resamples of dev examples as qualityLostByPerplexity; the
     * trainer's eval_loss itself is fixed, not resampled).
     */
    qualityLostByTrainerEvalLoss?: { mean: Num; ciLow: Num; ciHigh: Num } & ReplicateCount;
  };
  judge: { kind: string; description: string; formula?: string };
  data: { train: number; heldout: number; dev: number };
  /** Held-out coverage: present when the pipeline passed it in. */
  heldoutCoverage?: HeldoutCoverageFigures;
  /** Chat formats the checkpoints were evaluated in: present when the pipeline passed them in. */
  chatFormat?: ChatFormatFigures[];
  /** The pretrained base: present when the study pretrained one. */
  pretraining?: PretrainingFigures;
  backend: Record<string, unknown>;
  durationsSeconds: Record<string, number>;
  /** What the epoch numbers count: present only when the pipeline said (AnalysisInput.positionUnit); absent = 'epoch'. */
  positionUnit?: PositionUnit;
  /** The settings the intervals and the summary's verdict were computed with. */
  analysis: { bootstrap: number; confidence: number; alpha: number; maxUndefinedShare: number };
}
