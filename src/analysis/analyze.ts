// analyze(): per-epoch held-out perplexity and dev quality, their correlation across epochs,
// and the epoch-selection comparison, with bootstrap intervals. Deterministic from input.seed.
//
// The bootstrap resamples held-out examples and dev examples (paired across epochs: one draw of
// example indices is used for every epoch, since the same examples are scored at each epoch)
// and recomputes every per-epoch figure from precomputed per-example arrays, so 1000 resamples
// x 15 epochs x 2000 examples stays well under a second. Each epoch's perplexity interval
// (perplexityCi) resamples the held-out examples again, from a generator of its own, so that the
// figures above are the same as without it.
//
// Epoch 0, the base model, is split off first and evaluated the same way into Metrics.base, a
// reference row: every statistic across epochs (correlation, selection, stability) is computed
// as if its rows were absent. Metrics.base.change compares the selected epoch with it.
import { deriveSeed, mulberry32, type Rng } from '../util/rng.ts';
import {
  isConstant,
  kendallTauB,
  meanFinite,
  pearson,
  permutationPValue,
  replicateSummary,
  spearman,
  type CorrelationStat,
} from './stats.ts';
import { selectBestOverall, selectInWindow, selectLast, selectMinimum, selectMinPerplexity, type EpochFigures } from './select.ts';
import { devQualityByEpoch, heldoutTotalsByEpoch } from './tables.ts';
import {
  DEFAULT_ALPHA,
  DEFAULT_CONFIDENCE,
  DEFAULT_MAX_UNDEFINED_SHARE,
  type AnalysisInput,
  type BaseChange,
  type BaseMetrics,
  type CorrelationFigure,
  type EpochMetrics,
  type Metrics,
  type Num,
  type PerplexityInterval,
  type ReplicateCount,
  type UndefinedReason,
} from './types.ts';

export class AnalysisInputError extends Error {
  override name = 'AnalysisInputError';
}

/** Per-example arrays, example-major ([example * E + epochIndex]) so a resample walks memory in order. */
interface Prepared {
  epochs: number[];
  heldoutIds: string[];
  nll: Float64Array;
  tokens: Float64Array;
  bytes: Float64Array;
  devIds: string[];
  /** Per-example mean over valid samples; NaN when the example has no valid judgment at that epoch. */
  exampleQuality: Float64Array;
  invalid: number[];
  /** Per epoch index: invalid judgments by reason. */
  invalidByReason: Array<Map<string, number>>;
  trainLoss: Map<number, number | null>;
}

interface Figures extends EpochFigures {
  epochs: number[];
  perplexity: Float64Array;
  bitsPerByte: Float64Array;
  quality: Float64Array;
}

const CORRELATIONS: Array<[name: 'pearson' | 'spearman' | 'kendall', stat: CorrelationStat]> = [
  ['pearson', pearson],
  ['spearman', spearman],
  ['kendall', kendallTauB],
];

/**
 * Metrics of a study. Rows with epoch 0 (the base model) are split off first: the fine-tuning
 * epochs are analysed exactly as if those rows were absent (so every figure across epochs is
 * bit for bit the same), and the base is evaluated on its own into `Metrics.base`, placed right
 * after `epochs`. Throws AnalysisInputError naming the field on malformed input.
 */
export function analyze(input: AnalysisInput): Metrics {
  validateInput(input);
  const isBase = (r: { epoch: number }) => r.epoch === BASE_EPOCH;
  const hasBase = input.epochs.some(isBase) || input.perplexity.some(isBase) || input.quality.some(isBase);
  if (!hasBase) return analyzeEpochs(input);
  const notBase = (r: { epoch: number }) => r.epoch !== BASE_EPOCH;
  const { epochs, ...rest } = analyzeEpochs({ ...input, epochs: input.epochs.filter(notBase), perplexity: input.perplexity.filter(notBase), quality: input.quality.filter(notBase) });
  return { epochs, base: analyzeBase(input, epochs, rest.selection.epoch, rest.analysis), ...rest };
}

/** The epoch number of the base model (before any fine-tuning). */
export const BASE_EPOCH = 0;

/** The fine-tuning epochs' metrics (the input holds no base rows here). */
function analyzeEpochs(input: AnalysisInput): Metrics {
  const prep = prepare(input);
  const point = figuresFor(prep, null, null);
  crossCheckWithDanfo(input, prep, point);

  const window: [number, number] = [input.window[0], input.window[1]];
  const selected = selectInWindow(point, window);
  const minPpl = selectMinPerplexity(point);
  const last = selectLast(point);
  const bestOverall = selectBestOverall(point);
  // The trainer's own eval_loss (imported series): its minimum is what HF's load_best_model_at_end
  // would have kept. Compared only when known at every epoch in the window (every epoch, when the
  // window holds none), so the rule is not judged on a part of the candidates.
  const trainerLogs = new Map(input.epochs.filter((r) => r.trainer).map((r) => [r.epoch, r.trainer!]));
  const evalLoss = Float64Array.from(prep.epochs, (e) => trainerLogs.get(e)?.evalLoss ?? NaN);
  const inWindow = prep.epochs.map((e, i) => [e, i] as const).filter(([e]) => e >= input.window[0] && e <= input.window[1]);
  const evalLossKnown = evalLoss.some(Number.isFinite) && (inWindow.length > 0 ? inWindow.every(([, i]) => Number.isFinite(evalLoss[i]!)) : evalLoss.every(Number.isFinite));
  const minEvalLoss = evalLossKnown ? selectMinimum(prep.epochs, evalLoss) : -1;

  // Correlation over the epochs that have both figures.
  const paired = pairedIndices(point);
  const xs = paired.map((i) => point.perplexity[i]!);
  const ys = paired.map((i) => point.quality[i]!);

  // --- bootstrap ---
  const B = input.bootstrap;
  const settings: Metrics['analysis'] = {
    bootstrap: B,
    confidence: input.confidence ?? DEFAULT_CONFIDENCE,
    alpha: input.alpha ?? DEFAULT_ALPHA,
    maxUndefinedShare: input.maxUndefinedShare ?? DEFAULT_MAX_UNDEFINED_SHARE,
  };
  const E = prep.epochs.length;
  const H = prep.heldoutIds.length;
  const D = prep.devIds.length;
  const rng = mulberry32(deriveSeed(input.seed, 'analysis', 'bootstrap'));
  const qualityReps = Array.from({ length: E }, () => newReplicates(B));
  const corrReps = { pearson: newReplicates(B), spearman: newReplicates(B), kendall: newReplicates(B) };
  const lostReps = newReplicates(B);
  const evalLostReps = newReplicates(B);
  const wins = new Map<number, number>();
  const heldIdx = new Int32Array(H);
  const devIdx = new Int32Array(D);
  const bx = new Float64Array(paired.length);
  const by = new Float64Array(paired.length);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < H; i++) heldIdx[i] = Math.floor(rng() * H);
    for (let i = 0; i < D; i++) devIdx[i] = Math.floor(rng() * D);
    const f = figuresFor(prep, heldIdx, devIdx);
    // An epoch's mean quality is undefined in a resample only when none of its drawn examples has a valid judgment.
    for (let e = 0; e < E; e++) record(qualityReps[e]!, b, f.quality[e]!, 'noValidJudgment');
    // Fixed pairing of epochs (those paired in the point estimate). A resample that leaves an
    // epoch undefined, or quality (perplexity) the same at every epoch, leaves r undefined:
    // counted by cause and reported, not dropped silently.
    for (let k = 0; k < paired.length; k++) {
      bx[k] = f.perplexity[paired[k]!]!;
      by[k] = f.quality[paired[k]!]!;
    }
    const cause: UndefinedReason | null =
      paired.length < 3
        ? 'tooFewEpochs'
        : !by.every(Number.isFinite)
          ? 'noValidJudgment'
          : !bx.every(Number.isFinite)
            ? 'noHeldoutTokens'
            : isConstant(by)
              ? 'constantQuality'
              : isConstant(bx)
                ? 'constantPerplexity'
                : null;
    for (const [name, stat] of CORRELATIONS) record(corrReps[name], b, cause === null ? stat(bx, by) : NaN, cause);
    const lost = selected.index >= 0 && minPpl >= 0 ? f.quality[selected.index]! - f.quality[minPpl]! : NaN;
    record(lostReps, b, lost, minPpl < 0 ? 'noHeldoutTokens' : 'noValidJudgment');
    if (minEvalLoss >= 0) record(evalLostReps, b, selected.index >= 0 ? f.quality[selected.index]! - f.quality[minEvalLoss]! : NaN, 'noValidJudgment');
    const winner = selectInWindow(f, window).index;
    if (winner >= 0) wins.set(prep.epochs[winner]!, (wins.get(prep.epochs[winner]!) ?? 0) + 1);
  }

  // Own seed: the draws above (and every figure from them) are the same as without this interval.
  const perplexityCi = perplexityIntervals(prep, point, settings, mulberry32(deriveSeed(input.seed, 'analysis', 'perplexity-ci')));

  const checkpointPaths = new Map(input.epochs.filter((r) => r.checkpoint !== undefined).map((r) => [r.epoch, r.checkpoint!]));
  const epochs: EpochMetrics[] = prep.epochs.map((epoch, e) => {
    const { low: lo, high: hi, ...count } = summarise(qualityReps[e]!, settings);
    let n = 0;
    for (let d = 0; d < D; d++) if (Number.isFinite(prep.exampleQuality[d * E + e]!)) n++;
    return {
      epoch,
      perplexity: num(point.perplexity[e]!),
      perplexityCi: perplexityCi[e]!,
      bitsPerByte: num(point.bitsPerByte[e]!),
      quality: { mean: num(point.quality[e]!), ciLow: n > 0 ? num(lo) : null, ciHigh: n > 0 ? num(hi) : null, n, invalid: prep.invalid[e]!, invalidByReason: sortedCounts(prep.invalidByReason[e]!), ...count },
      trainLoss: num(prep.trainLoss.get(epoch) ?? NaN),
      ...(trainerLogs.has(epoch) ? { trainer: trainerLogs.get(epoch)! } : {}),
      ...(checkpointPaths.has(epoch) ? { checkpoint: checkpointPaths.get(epoch)! } : {}),
    };
  });

  const permRng = mulberry32(deriveSeed(input.seed, 'analysis', 'permutation'));
  const correlation = {} as Record<'pearson' | 'spearman' | 'kendall', CorrelationFigure>;
  for (const [name, stat] of CORRELATIONS) {
    const r = xs.length >= 3 ? stat(xs, ys) : NaN;
    const { low: lo, high: hi, ...count } = summarise(corrReps[name], settings);
    const p = Number.isFinite(r) ? permutationPValue(xs, ys, stat, permRng).p : NaN;
    correlation[name] = { r: num(r), ciLow: Number.isFinite(r) ? num(lo) : null, ciHigh: Number.isFinite(r) ? num(hi) : null, p: num(p), ...count };
  }

  const { low: lostLo, high: lostHi, ...lostCount } = summarise(lostReps, settings);
  const lostMean = selected.index >= 0 && minPpl >= 0 ? point.quality[selected.index]! - point.quality[minPpl]! : NaN;
  const evalLostMean = selected.index >= 0 && minEvalLoss >= 0 ? point.quality[selected.index]! - point.quality[minEvalLoss]! : NaN;
  const { low: evalLostLo, high: evalLostHi, ...evalLostCount } = summarise(evalLostReps, settings);

  const alt = (rule: string, i: number) => ({
    rule,
    epoch: i >= 0 ? prep.epochs[i]! : null,
    quality: i >= 0 ? num(point.quality[i]!) : null,
    perplexity: i >= 0 ? num(point.perplexity[i]!) : null,
  });
  // The window in the axis' own unit: "epochs 5..10", "steps 150..300" (an imported series placed by steps).
  const windowText = `${window[0]}..${window[1]}`;
  // What a position counts ('epoch' for our runs; a series placed by steps says 'step').
  const unit = input.positionUnit ?? 'epoch';
  const units = `${unit}s`;
  const ruleText = selected.fallback
    ? selected.index >= 0
      ? `fallback: no epoch in window ${windowText} has a valid quality score, so the highest mean dev quality over all epochs was chosen (ties: lower held-out perplexity, then earlier epoch)`
      : `no epoch has a valid quality score: nothing selected`
    : `highest mean dev quality in ${units} ${windowText} (ties: lower held-out perplexity, then earlier ${input.positionUnit ?? 'epoch'})`;

  const stability: Record<string, number> = {};
  const candidates = prep.epochs.filter((e, i) => (selected.fallback || (e >= window[0] && e <= window[1])) && Number.isFinite(point.quality[i]!));
  for (const e of [...new Set([...candidates, ...wins.keys()])].sort((a, b) => a - b)) stability[String(e)] = B > 0 ? (wins.get(e) ?? 0) / B : 0;

  const judge: Metrics['judge'] = { kind: input.judge.kind, description: input.judge.description };
  if (input.judge.formula !== undefined) judge.formula = input.judge.formula;

  const selEpoch = selected.index >= 0 ? prep.epochs[selected.index]! : null;
  const minPplEpoch = minPpl >= 0 ? prep.epochs[minPpl]! : null;
  return {
    epochs,
    correlation: {
      ...correlation,
      pairedEpochs: paired.length,
      summary: correlationSentence(correlation.pearson, selEpoch, minPplEpoch, correlation, { ...settings, pairedEpochs: paired.length }),
    },
    selection: {
      window,
      epoch: selEpoch,
      rule: ruleText,
      alternatives: [
        alt(selected.fallback ? `highest dev quality, any ${unit} (fallback: window empty) [selected]` : `highest dev quality in ${units} ${windowText} [selected]`, selected.index),
        alt(LOWEST_PERPLEXITY_RULE, minPpl),
        alt(`last ${unit}`, last),
        alt(`highest dev quality, any ${unit}`, bestOverall),
        ...(minEvalLoss >= 0 ? [alt(TRAINER_EVAL_LOSS_RULE, minEvalLoss)] : []),
      ],
      qualityLostByPerplexity: {
        mean: num(lostMean),
        ciLow: Number.isFinite(lostMean) ? num(lostLo) : null,
        ciHigh: Number.isFinite(lostMean) ? num(lostHi) : null,
        ...lostCount,
      },
      stability,
      ...(minEvalLoss >= 0
        ? {
            qualityLostByTrainerEvalLoss: {
              mean: num(evalLostMean),
              ciLow: Number.isFinite(evalLostMean) ? num(evalLostLo) : null,
              ciHigh: Number.isFinite(evalLostMean) ? num(evalLostHi) : null,
              ...evalLostCount,
            },
          }
        : {}),
    },
    judge,
    data: { train: input.data.train, heldout: input.data.heldout, dev: input.data.dev },
    ...(input.heldoutCoverage ? { heldoutCoverage: { ...input.heldoutCoverage } } : {}),
    ...(input.chatFormat ? { chatFormat: input.chatFormat.map((f) => ({ description: f.description, epochs: [...f.epochs] })) } : {}),
    ...(input.pretraining ? { pretraining: structuredClone(input.pretraining) } : {}),
    backend: { ...input.backend },
    durationsSeconds: { ...input.durationsSeconds },
    ...(input.positionUnit !== undefined ? { positionUnit: input.positionUnit } : {}),
    analysis: settings,
  };
}

/** The alternative rule of the lowest held-out perplexity (on our held-out set, not the trainer's eval set). */
export const LOWEST_PERPLEXITY_RULE = 'lowest held-out perplexity (on our held-out set)';
/** The alternative rule of the trainer's own eval_loss: present when it is known at every epoch in the window. */
export const TRAINER_EVAL_LOSS_RULE = "lowest trainer eval_loss (what load_best_model_at_end with metric_for_best_model='loss' picks)";

/**
 * The base model's row and what fine-tuning changed at the selected epoch. The base rows and the
 * selected epoch's rows are scored on one example list (every held-out and dev id in the input,
 * like the epochs, whose lists are every id of theirs), so each resample draws the same examples
 * for both: the change is paired by example. The base's own interval comes from the same draws.
 * The seed is derived under its own label ('analysis', 'base'): the epochs' intervals are not
 * disturbed. `epochs` are the fine-tuning epochs' metrics, `selEpoch` the selected one. The
 * base's perplexity interval is drawn from a seed of its own ('analysis', 'perplexity-ci', 'base').
 */
function analyzeBase(input: AnalysisInput, epochs: EpochMetrics[], selEpoch: number | null, settings: Metrics['analysis']): BaseMetrics {
  const sel = selEpoch === null ? undefined : epochs.find((e) => e.epoch === selEpoch);
  const keep = (r: { epoch: number }) => r.epoch === BASE_EPOCH || (sel !== undefined && r.epoch === sel.epoch);
  const ids = { heldout: [...new Set(input.perplexity.map((r) => r.exampleId))], dev: [...new Set(input.quality.map((r) => r.exampleId))] };
  const sub: AnalysisInput = { ...input, epochs: input.epochs.filter(keep), perplexity: input.perplexity.filter(keep), quality: input.quality.filter(keep) };
  const prep = prepare(sub, ids);
  const point = figuresFor(prep, null, null);
  crossCheckWithDanfo(sub, prep, point);
  const E = prep.epochs.length;
  const b0 = prep.epochs.indexOf(BASE_EPOCH);
  const s = sel === undefined ? -1 : prep.epochs.indexOf(sel.epoch);

  const B = settings.bootstrap;
  const H = ids.heldout.length;
  const D = ids.dev.length;
  const rng = mulberry32(deriveSeed(input.seed, 'analysis', 'base'));
  const qualityReps = newReplicates(B);
  const changeReps = newReplicates(B);
  const ratioReps = newReplicates(B);
  const heldIdx = new Int32Array(H);
  const devIdx = new Int32Array(D);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < H; i++) heldIdx[i] = Math.floor(rng() * H);
    for (let i = 0; i < D; i++) devIdx[i] = Math.floor(rng() * D);
    const f = figuresFor(prep, heldIdx, devIdx);
    record(qualityReps, b, f.quality[b0]!, 'noValidJudgment');
    if (s >= 0) {
      record(changeReps, b, f.quality[s]! - f.quality[b0]!, 'noValidJudgment');
      record(ratioReps, b, f.perplexity[s]! / f.perplexity[b0]!, 'noHeldoutTokens');
    }
  }

  const { low, high, ...count } = summarise(qualityReps, settings);
  const baseCheckpoint = input.epochs.find((r) => r.epoch === BASE_EPOCH)?.checkpoint;
  let n = 0;
  for (let d = 0; d < D; d++) if (Number.isFinite(prep.exampleQuality[d * E + b0]!)) n++;
  const row: EpochMetrics = {
    epoch: BASE_EPOCH,
    perplexity: num(point.perplexity[b0]!),
    perplexityCi: perplexityIntervals(prep, point, settings, mulberry32(deriveSeed(input.seed, 'analysis', 'perplexity-ci', 'base')))[b0]!,
    bitsPerByte: num(point.bitsPerByte[b0]!),
    quality: { mean: num(point.quality[b0]!), ciLow: n > 0 ? num(low) : null, ciHigh: n > 0 ? num(high) : null, n, invalid: prep.invalid[b0]!, invalidByReason: sortedCounts(prep.invalidByReason[b0]!), ...count },
    trainLoss: num(prep.trainLoss.get(BASE_EPOCH) ?? NaN),
    ...(baseCheckpoint !== undefined ? { checkpoint: baseCheckpoint } : {}),
  };

  let change: BaseChange | null = null;
  if (sel !== undefined) {
    // Point figures from the rows the report shows, so the change is exactly their difference (ratio).
    const dq = sel.quality.mean !== null && row.quality.mean !== null ? sel.quality.mean - row.quality.mean : NaN;
    const ratio = sel.perplexity !== null && row.perplexity !== null ? sel.perplexity / row.perplexity : NaN;
    const { low: qLo, high: qHi, ...qCount } = summarise(changeReps, settings);
    const { low: rLo, high: rHi, ...rCount } = summarise(ratioReps, settings);
    change = {
      epoch: sel.epoch,
      quality: { mean: num(dq), ciLow: Number.isFinite(dq) ? num(qLo) : null, ciHigh: Number.isFinite(dq) ? num(qHi) : null, ...qCount },
      perplexityRatio: { value: num(ratio), ciLow: Number.isFinite(ratio) ? num(rLo) : null, ciHigh: Number.isFinite(ratio) ? num(rHi) : null, ...rCount },
    };
  }
  return { ...row, epoch: BASE_EPOCH, reference: true, change, summary: baseSentence(row, change, sel, settings) };
}

/**
 * The base row and what fine-tuning changed, in words. A direction of the quality change is
 * stated only when its interval (at `confidence`) excludes 0 and is not marked unreliable.
 * `selected` is the selected epoch's row (undefined when nothing was selected).
 */
export function baseSentence(base: EpochMetrics, change: BaseChange | null, selected: EpochMetrics | undefined, settings: { confidence?: number } = {}): string {
  const level = `${formatShare(settings.confidence ?? DEFAULT_CONFIDENCE)}%`;
  const two = (x: number | null) => (x === null ? 'n/a' : x.toFixed(2));
  let text = `The base model (epoch 0, before fine-tuning) is the reference row: mean dev quality ${two(base.quality.mean)}, held-out perplexity ${two(base.perplexity)}.`;
  if (change === null || selected === undefined) {
    text += ' No fine-tuning epoch was selected, so there is no change to report.';
  } else {
    const q = change.quality;
    const e = change.epoch;
    if (q.mean === null) {
      text += ` At the selected epoch ${e} the change in mean dev quality is undefined (no valid judgment for the base or for epoch ${e}).`;
    } else {
      const unreliable = q.intervalUnreliable ? `; unreliable: ${undefinedReplicatesText(q, 'the change')}` : '';
      const ci = q.ciLow !== null && q.ciHigh !== null ? ` [${signed(q.ciLow)}, ${signed(q.ciHigh)}] (${level} bootstrap interval over the dev examples, paired: one draw scores both models${unreliable})` : '';
      const side = q.intervalUnreliable || q.ciLow === null || q.ciHigh === null ? 0 : q.ciLow > 0 ? 1 : q.ciHigh < 0 ? -1 : 0;
      const verdict =
        side > 0 ? 'fine-tuning raised mean dev quality' : side < 0 ? 'fine-tuning lowered mean dev quality' : 'these dev examples cannot tell whether fine-tuning changed mean dev quality';
      text +=
        ` At the selected epoch ${e} mean dev quality is ${two(selected.quality.mean)}, ${signed(q.mean)} against the base${ci}: ${verdict}` +
        ` (epoch ${e} was selected on these same dev examples, so the change leans optimistic).`;
    }
    const r = change.perplexityRatio;
    text +=
      r.value === null
        ? ` The held-out perplexity ratio is undefined (no held-out tokens for the base or for epoch ${e}).`
        : ` Held-out perplexity went from ${two(base.perplexity)} to ${two(selected.perplexity)}, ratio ${r.value.toFixed(3)}` +
          (r.ciLow !== null && r.ciHigh !== null ? ` [${r.ciLow.toFixed(3)}, ${r.ciHigh.toFixed(3)}]` : '') +
          (r.intervalUnreliable ? ` (unreliable: ${undefinedReplicatesText(r, 'the ratio')})` : '') +
          '.';
  }
  return text + ' The correlation, every selection rule (lowest perplexity included) and the selection stability are over the fine-tuning epochs only.';
}

/**
 * Percentile bootstrap interval of each epoch's held-out perplexity (index = epoch index of
 * `prep`): each of settings.bootstrap resamples draws prep's held-out examples with replacement
 * (one draw for every epoch) from `rng` and takes exp(sum nll / sum tokens) over it, from the
 * per-example sums in `prep`, so B x H x E additions in all (1000 x 2000 x 16: a fraction of a
 * second). `rng` must be this interval's own: drawing from the other intervals' generator would
 * move them. low/high are null where the point perplexity is undefined (no held-out tokens).
 */
function perplexityIntervals(prep: Prepared, point: Figures, settings: Metrics['analysis'], rng: Rng): PerplexityInterval[] {
  const E = prep.epochs.length;
  const H = prep.heldoutIds.length;
  const B = settings.bootstrap;
  const reps = Array.from({ length: E }, () => newReplicates(B));
  const nll = new Float64Array(E);
  const tokens = new Float64Array(E);
  for (let b = 0; b < B; b++) {
    nll.fill(0);
    tokens.fill(0);
    for (let k = 0; k < H; k++) {
      const row = Math.floor(rng() * H) * E;
      for (let e = 0; e < E; e++) {
        nll[e] += prep.nll[row + e]!;
        tokens[e] += prep.tokens[row + e]!;
      }
    }
    for (let e = 0; e < E; e++) record(reps[e]!, b, tokens[e]! > 0 ? Math.exp(nll[e]! / tokens[e]!) : NaN, 'noHeldoutTokens');
  }
  return reps.map((r, e) => {
    const { low, high, ...count } = summarise(r, settings);
    const defined = Number.isFinite(point.perplexity[e]!);
    return { low: defined ? num(low) : null, high: defined ? num(high) : null, ...count };
  });
}

/** Bootstrap replicates of one statistic, and why the undefined ones are undefined. */
interface Replicates {
  values: Float64Array;
  byReason: Partial<Record<UndefinedReason, number>>;
}

function newReplicates(B: number): Replicates {
  return { values: new Float64Array(B), byReason: {} };
}

/** Stores replicate b; a NaN is counted under `reason`, the one way the caller's statistic can be undefined there. */
function record(reps: Replicates, b: number, value: number, reason: UndefinedReason | null): void {
  reps.values[b] = value;
  if (Number.isNaN(value)) {
    if (reason === null) throw new Error('analysis: a bootstrap statistic is undefined on non-constant, complete data (a bug)');
    reps.byReason[reason] = (reps.byReason[reason] ?? 0) + 1;
  }
}

/** The percentile interval at settings.confidence and what it rests on. */
function summarise(reps: Replicates, settings: Metrics['analysis']): { low: number; high: number } & ReplicateCount {
  const s = replicateSummary(reps.values, settings.confidence);
  return {
    low: s.low,
    high: s.high,
    replicates: s.replicates,
    undefinedReplicates: s.undefinedReplicates,
    undefinedByReason: { ...reps.byReason },
    intervalUnreliable: s.replicates > 0 && s.undefinedReplicates / s.replicates > settings.maxUndefinedShare,
  };
}

const REASON_TEXT: Record<UndefinedReason, string> = {
  constantQuality: 'constant quality',
  constantPerplexity: 'constant perplexity',
  noValidJudgment: 'no valid judgment',
  noHeldoutTokens: 'no held-out tokens',
  tooFewEpochs: 'fewer than 3 paired epochs',
};

/** "72 of 200 resamples left r undefined (constant quality)"; with several causes, each with its count. */
export function undefinedReplicatesText(count: Pick<ReplicateCount, 'replicates' | 'undefinedReplicates' | 'undefinedByReason'>, statistic: string): string {
  const reasons = Object.entries(count.undefinedByReason) as Array<[UndefinedReason, number]>;
  const why = reasons.length === 1 ? REASON_TEXT[reasons[0]![0]] : reasons.map(([k, n]) => `${REASON_TEXT[k]}: ${n}`).join(', ');
  return `${count.undefinedReplicates} of ${count.replicates} resamples left ${statistic} undefined${why ? ` (${why})` : ''}`;
}

/** A correlation figure as the sentence reads it; the replicate counts are optional for hand-built figures. */
export type SentenceFigure = Pick<CorrelationFigure, 'r' | 'ciLow' | 'ciHigh' | 'p'> & Partial<ReplicateCount>;

/**
 * The correlation in words. A direction is stated only when the data support it at the stated
 * level: Pearson's interval (at `confidence`, default 0.95) excludes 0 on the side of r and is
 * not marked unreliable, and the two-sided permutation p is below `alpha` (default 0.05).
 * Otherwise the sentence says the data cannot tell, and why, with r, the interval and p.
 * r > 0 is LIMA's observation: perplexity rose as quality rose, so the lowest-perplexity epoch
 * is not the best one. `pairedEpochs` (the points r is over) is named when given.
 */
export function correlationSentence(
  pearsonFig: SentenceFigure,
  selectedEpoch: number | null,
  minPplEpoch: number | null,
  ranks?: { spearman: SentenceFigure; kendall: SentenceFigure },
  settings: { confidence?: number; alpha?: number; pairedEpochs?: number } = {},
): string {
  const { r, ciLow, ciHigh, p } = pearsonFig;
  const n = settings.pairedEpochs;
  const alpha = settings.alpha ?? DEFAULT_ALPHA;
  const level = `${formatShare(settings.confidence ?? DEFAULT_CONFIDENCE)}%`;
  if (r === null) {
    if (n !== undefined && n < 3) return `r(perplexity, quality) is undefined: only ${n} epoch${n === 1 ? '' : 's'} ${n === 1 ? 'has' : 'have'} both figures (at least 3 are needed).`;
    return `r(perplexity, quality) is undefined: fewer than 3 epochs have both figures, or one of them is constant across ${n === undefined ? 'epochs' : `the ${n} epochs`}.`;
  }
  const pText = p === null ? null : p < 0.001 ? 'p < 0.001' : `p = ${p.toFixed(3)}`;
  const head =
    `r(perplexity, quality) = ${signed(r)}` +
    (ciLow !== null && ciHigh !== null ? ` [${signed(ciLow)}, ${signed(ciHigh)}]` : '') +
    (n !== undefined ? ` across ${n} epochs` : '') +
    (pText !== null ? `, permutation ${pText}` : '');
  // The interval covers example sampling only; the permutation p covers how few epochs there are.
  const about =
    ` The ${level} interval resamples the dev and held-out examples (the same draw at every epoch); it keeps the ` +
    (n !== undefined ? `${n} epochs fixed, so it does not reflect that r rests on only ${n} points` : 'epochs fixed, so it does not reflect how few they are') +
    ': the two-sided permutation p, over pairings of the epochs, does.';
  const picks =
    selectedEpoch !== null && minPplEpoch !== null
      ? selectedEpoch === minPplEpoch
        ? ` Here both rules pick epoch ${selectedEpoch}.`
        : ` Here the lowest-perplexity epoch is ${minPplEpoch}, the selected one ${selectedEpoch}.`
      : '';
  const tail = about + caveat(pearsonFig, ranks) + picks;

  const side = ciLow === null || ciHigh === null ? 0 : ciLow > 0 ? 1 : ciHigh < 0 ? -1 : 0;
  const why: string[] = [];
  if (ciLow === null || ciHigh === null) why.push('no bootstrap interval');
  else if (side === 0) why.push(`the ${level} interval spans 0`);
  else if (Math.sign(r) !== side) why.push('r and its interval lie on opposite sides of 0');
  if (pearsonFig.intervalUnreliable) {
    const { replicates = 0, undefinedReplicates = 0, undefinedByReason = {} } = pearsonFig;
    why.push(`the interval is unreliable: ${undefinedReplicatesText({ replicates, undefinedReplicates, undefinedByReason }, 'r')}`);
  }
  if (pText === null) why.push('no permutation p-value');
  else if (!(p! < alpha)) why.push(`${pText} is not below ${alpha}`);
  if (why.length > 0) {
    return `${head}: the data cannot tell whether perplexity rises or falls with quality across epochs (${why.join('; ')}), so perplexity cannot stand in for quality when choosing an epoch.${tail}`;
  }
  if (side > 0) {
    return `${head}: perplexity rose with quality, so the lowest-perplexity epoch is not the best one (the direction LIMA reported).${tail}`;
  }
  return `${head}: perplexity fell as quality rose, so the lowest-perplexity epoch tends to be a good one here (the opposite of what LIMA reported).${tail}`;
}

/** 0.95 -> "95", 0.975 -> "97.5". */
function formatShare(x: number): string {
  return String(Number((x * 100).toPrecision(6)));
}

/**
 * When Pearson's interval excludes 0 but a rank correlation's does not (or points the other way),
 * the linear r leans on a few epochs; say so rather than let one coefficient speak for all. An
 * interval marked unreliable has no clear sign.
 */
function caveat(pearsonFig: SentenceFigure, ranks?: { spearman: SentenceFigure; kendall: SentenceFigure }): string {
  const clearSign = (c: SentenceFigure): number => (c.intervalUnreliable ? 0 : c.ciLow !== null && c.ciLow > 0 ? 1 : c.ciHigh !== null && c.ciHigh < 0 ? -1 : 0);
  const sign = clearSign(pearsonFig);
  if (!ranks || sign === 0 || (clearSign(ranks.spearman) === sign && clearSign(ranks.kendall) === sign)) return '';
  const show = (name: string, c: SentenceFigure) => `${name} ${signed(c.r)} [${signed(c.ciLow)}, ${signed(c.ciHigh)}]${c.intervalUnreliable ? ' (interval unreliable)' : ''}`;
  return ` The rank correlations are less clear (${show('Spearman', ranks.spearman)}, ${show('Kendall', ranks.kendall)}): the linear r leans on a few epochs.`;
}

/** A correlation with its sign: +0.84, -0.27, n/a. */
function signed(x: number | null): string {
  return x === null ? 'n/a' : (x >= 0 ? '+' : '') + x.toFixed(2);
}

function num(x: number): Num {
  return Number.isFinite(x) ? x : null;
}

function pairedIndices(f: Figures): number[] {
  const out: number[] = [];
  for (let i = 0; i < f.epochs.length; i++) if (Number.isFinite(f.perplexity[i]!) && Number.isFinite(f.quality[i]!)) out.push(i);
  return out;
}

/** Per-epoch figures over a (re)sample of held-out and dev example indices (null = all, once each). */
function figuresFor(prep: Prepared, heldIdx: Int32Array | null, devIdx: Int32Array | null): Figures {
  const E = prep.epochs.length;
  const nll = new Float64Array(E);
  const tokens = new Float64Array(E);
  const bytes = new Float64Array(E);
  const H = heldIdx ? heldIdx.length : prep.heldoutIds.length;
  for (let k = 0; k < H; k++) {
    const row = (heldIdx ? heldIdx[k]! : k) * E;
    for (let e = 0; e < E; e++) {
      nll[e] += prep.nll[row + e]!;
      tokens[e] += prep.tokens[row + e]!;
      bytes[e] += prep.bytes[row + e]!;
    }
  }
  const qSum = new Float64Array(E);
  const qCount = new Float64Array(E);
  const D = devIdx ? devIdx.length : prep.devIds.length;
  for (let k = 0; k < D; k++) {
    const row = (devIdx ? devIdx[k]! : k) * E;
    for (let e = 0; e < E; e++) {
      const q = prep.exampleQuality[row + e]!;
      if (q === q) {
        qSum[e] += q;
        qCount[e]++;
      }
    }
  }
  const perplexity = new Float64Array(E);
  const bitsPerByte = new Float64Array(E);
  const quality = new Float64Array(E);
  for (let e = 0; e < E; e++) {
    perplexity[e] = tokens[e]! > 0 ? Math.exp(nll[e]! / tokens[e]!) : NaN;
    bitsPerByte[e] = bytes[e]! > 0 ? nll[e]! / Math.LN2 / bytes[e]! : NaN;
    quality[e] = qCount[e]! > 0 ? qSum[e]! / qCount[e]! : NaN;
  }
  return { epochs: prep.epochs, perplexity, bitsPerByte, quality };
}

/** `ids` fixes the example lists (a superset of the rows' ids) instead of taking them from the rows. */
function prepare(input: AnalysisInput, ids?: { heldout: string[]; dev: string[] }): Prepared {
  const epochSet = new Set<number>();
  for (const r of input.epochs) epochSet.add(r.epoch);
  for (const r of input.perplexity) epochSet.add(r.epoch);
  for (const r of input.quality) epochSet.add(r.epoch);
  const epochs = [...epochSet].sort((a, b) => a - b);
  const E = epochs.length;
  const epochIndex = new Map(epochs.map((e, i) => [e, i]));

  const heldoutIds = ids?.heldout ?? [...new Set(input.perplexity.map((r) => r.exampleId))];
  const heldIndex = new Map(heldoutIds.map((id, i) => [id, i]));
  const nll = new Float64Array(heldoutIds.length * E);
  const tokens = new Float64Array(heldoutIds.length * E);
  const bytes = new Float64Array(heldoutIds.length * E);
  for (const r of input.perplexity) {
    const at = heldIndex.get(r.exampleId)! * E + epochIndex.get(r.epoch)!;
    nll[at] = r.nll;
    tokens[at] = r.tokens;
    bytes[at] = r.bytes;
  }

  const devIds = ids?.dev ?? [...new Set(input.quality.map((r) => r.exampleId))];
  const devIndex = new Map(devIds.map((id, i) => [id, i]));
  const sum = new Float64Array(devIds.length * E);
  const count = new Float64Array(devIds.length * E);
  const invalid = new Array<number>(E).fill(0);
  const invalidByReason = Array.from({ length: E }, () => new Map<string, number>());
  for (const r of input.quality) {
    const e = epochIndex.get(r.epoch)!;
    if (r.score === null) {
      invalid[e]!++;
      const reason = r.invalidReason ?? UNSPECIFIED_REASON;
      invalidByReason[e]!.set(reason, (invalidByReason[e]!.get(reason) ?? 0) + 1);
      continue;
    }
    const at = devIndex.get(r.exampleId)! * E + e;
    sum[at] += r.score;
    count[at]++;
  }
  const exampleQuality = new Float64Array(devIds.length * E);
  for (let i = 0; i < exampleQuality.length; i++) exampleQuality[i] = count[i]! > 0 ? sum[i]! / count[i]! : NaN;

  return { epochs, heldoutIds, nll, tokens, bytes, devIds, exampleQuality, invalid, invalidByReason, trainLoss: new Map(input.epochs.map((r) => [r.epoch, r.trainLoss])) };
}

/** The reason counted for an invalid judgment that came without one. */
export const UNSPECIFIED_REASON = 'unspecified';

function sortedCounts(counts: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The danfo group-bys must agree with the plain-TS sums; a mismatch is a bug, not bad input. */
function crossCheckWithDanfo(input: AnalysisInput, prep: Prepared, point: Figures): void {
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  for (const t of heldoutTotalsByEpoch(input.perplexity)) {
    const e = prep.epochs.indexOf(t.epoch);
    const ppl = t.tokens > 0 ? Math.exp(t.nll / t.tokens) : NaN;
    if (!(Number.isNaN(ppl) && Number.isNaN(point.perplexity[e]!)) && !close(ppl, point.perplexity[e]!)) {
      throw new Error(`analysis: danfo and plain-TS perplexity disagree at epoch ${t.epoch} (${ppl} vs ${point.perplexity[e]})`);
    }
  }
  for (const q of devQualityByEpoch(input.quality)) {
    const e = prep.epochs.indexOf(q.epoch);
    if (!close(q.quality, point.quality[e]!)) {
      throw new Error(`analysis: danfo and plain-TS mean quality disagree at epoch ${q.epoch} (${q.quality} vs ${point.quality[e]})`);
    }
  }
}

function validateInput(input: AnalysisInput): void {
  const fail = (where: string, msg: string) => {
    throw new AnalysisInputError(`analysis input: ${where}: ${msg}`);
  };
  // An epoch is a checkpoint's position: fractional for an imported series saved by steps.
  const isEpoch = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (!Array.isArray(input.window) || input.window.length !== 2 || !isEpoch(input.window[0]) || !isEpoch(input.window[1])) {
    fail('window', `expected [first, last] epochs (non-negative numbers), got ${JSON.stringify(input.window)}`);
  }
  if (input.positionUnit !== undefined && !['epoch', 'step', 'position'].includes(input.positionUnit)) {
    fail('positionUnit', `expected "epoch", "step" or "position", got ${JSON.stringify(input.positionUnit)}`);
  }
  if (input.window[0] > input.window[1]) fail('window', `[${input.window}] is empty (first > last)`);
  if (!Number.isInteger(input.bootstrap) || input.bootstrap < 0) fail('bootstrap', `expected a non-negative integer, got ${input.bootstrap}`);
  const share = (key: 'confidence' | 'alpha' | 'maxUndefinedShare', closed: boolean) => {
    const v = input[key];
    if (v === undefined) return;
    if (!finite(v) || (closed ? v < 0 || v > 1 : v <= 0 || v >= 1)) fail(key, `expected a number ${closed ? 'in [0, 1]' : 'strictly between 0 and 1'}, got ${JSON.stringify(v)}`);
  };
  share('confidence', false);
  share('alpha', false);
  share('maxUndefinedShare', true);
  if (!Number.isInteger(input.seed)) fail('seed', `expected an integer, got ${input.seed}`);
  input.epochs.forEach((r, i) => {
    if (!isEpoch(r.epoch)) fail(`epochs[${i}].epoch`, `expected a non-negative number, got ${JSON.stringify(r.epoch)}`);
    if (r.checkpoint !== undefined && (typeof r.checkpoint !== 'string' || r.checkpoint === '')) {
      fail(`epochs[${i}] (epoch ${r.epoch}).checkpoint`, `expected a non-empty path, got ${JSON.stringify(r.checkpoint)}`);
    }
    if (!finite(r.trainLoss) && r.trainLoss !== null) {
      fail(`epochs[${i}] (epoch ${r.epoch}).trainLoss`, `expected a finite number or null (not logged), got ${typeof r.trainLoss === 'number' ? String(r.trainLoss) : JSON.stringify(r.trainLoss)}`);
    }
  });
  const seenPpl = new Set<string>();
  input.perplexity.forEach((r, i) => {
    const where = `perplexity[${i}] (example ${JSON.stringify(r.exampleId)}, epoch ${r.epoch})`;
    if (!isEpoch(r.epoch)) fail(`${where}.epoch`, `expected a non-negative number, got ${JSON.stringify(r.epoch)}`);
    if (typeof r.exampleId !== 'string' || r.exampleId === '') fail(`${where}.exampleId`, 'expected a non-empty string');
    if (!finite(r.nll) || r.nll < 0) fail(`${where}.nll`, `expected a finite number >= 0, got ${JSON.stringify(r.nll)}`);
    if (!Number.isInteger(r.tokens) || r.tokens < 0) fail(`${where}.tokens`, `expected an integer >= 0, got ${JSON.stringify(r.tokens)}`);
    if (!Number.isInteger(r.bytes) || r.bytes < 0) fail(`${where}.bytes`, `expected an integer >= 0, got ${JSON.stringify(r.bytes)}`);
    const key = `${r.epoch}\u0000${r.exampleId}`;
    if (seenPpl.has(key)) fail(where, 'duplicate (epoch, exampleId)');
    seenPpl.add(key);
  });
  const seenQ = new Set<string>();
  input.quality.forEach((r, i) => {
    const where = `quality[${i}] (example ${JSON.stringify(r.exampleId)}, epoch ${r.epoch}, sample ${r.sample})`;
    if (!isEpoch(r.epoch)) fail(`${where}.epoch`, `expected a non-negative number, got ${JSON.stringify(r.epoch)}`);
    if (typeof r.exampleId !== 'string' || r.exampleId === '') fail(`${where}.exampleId`, 'expected a non-empty string');
    if (!Number.isInteger(r.sample) || r.sample < 0) fail(`${where}.sample`, `expected an integer >= 0, got ${JSON.stringify(r.sample)}`);
    if (r.score !== null && (!finite(r.score) || r.score < 1 || r.score > 6)) fail(`${where}.score`, `expected 1..6 or null, got ${JSON.stringify(r.score)}`);
    if (r.invalidReason !== undefined) {
      if (typeof r.invalidReason !== 'string' || r.invalidReason.trim() === '') fail(`${where}.invalidReason`, `expected a non-empty string, got ${JSON.stringify(r.invalidReason)}`);
      if (r.score !== null) fail(`${where}.invalidReason`, `given (${JSON.stringify(r.invalidReason)}) with a valid score ${r.score}; a reason belongs to a null score only`);
    }
    const key = `${r.epoch}\u0000${r.exampleId}\u0000${r.sample}`;
    if (seenQ.has(key)) fail(where, 'duplicate (epoch, exampleId, sample)');
    seenQ.add(key);
  });
}
