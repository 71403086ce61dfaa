// Epoch-selection rules. The study's rule: highest mean dev quality inside an inclusive epoch
// window, ties to lower held-out perplexity, then the earlier epoch. The alternatives are what
// a user would otherwise do (the lowest held-out perplexity on our held-out set, the lowest
// eval_loss the series' own trainer logged, which is what HF's load_best_model_at_end with
// metric_for_best_model='loss' picks, the last epoch, the best epoch anywhere), reported side by side.

/** Per-epoch figures, index-aligned with `epochs` (NaN = not measured). */
export interface EpochFigures {
  epochs: readonly number[];
  perplexity: ArrayLike<number>;
  quality: ArrayLike<number>;
}

export interface Choice {
  /** Index into epochs, -1 when nothing could be chosen. */
  index: number;
  /** True when the window held no epoch with a quality score and the rule looked at all epochs. */
  fallback: boolean;
}

const TIE = 1e-12;

function sameValue(a: number, b: number): boolean {
  return Math.abs(a - b) <= TIE * Math.max(1, Math.abs(a), Math.abs(b));
}

/** Is candidate i better than the current best j by (quality desc, perplexity asc, epoch asc)? */
function betterByQuality(f: EpochFigures, i: number, j: number): boolean {
  const qi = f.quality[i]!;
  const qj = f.quality[j]!;
  if (!sameValue(qi, qj)) return qi > qj;
  const pi = Number.isFinite(f.perplexity[i]!) ? f.perplexity[i]! : Infinity;
  const pj = Number.isFinite(f.perplexity[j]!) ? f.perplexity[j]! : Infinity;
  if (pi !== pj && !(Number.isFinite(pi) && Number.isFinite(pj) && sameValue(pi, pj))) return pi < pj;
  return f.epochs[i]! < f.epochs[j]!;
}

function argBestQuality(f: EpochFigures, inWindow: (epoch: number) => boolean): number {
  let best = -1;
  for (let i = 0; i < f.epochs.length; i++) {
    if (!inWindow(f.epochs[i]!) || !Number.isFinite(f.quality[i]!)) continue;
    if (best < 0 || betterByQuality(f, i, best)) best = i;
  }
  return best;
}

/** The study's rule (with a clearly flagged fallback to all epochs if the window is empty). */
export function selectInWindow(f: EpochFigures, window: readonly [number, number]): Choice {
  const inside = argBestQuality(f, (e) => e >= window[0] && e <= window[1]);
  if (inside >= 0) return { index: inside, fallback: false };
  return { index: argBestQuality(f, () => true), fallback: true };
}

/** Best mean dev quality over every epoch. */
export function selectBestOverall(f: EpochFigures): number {
  return argBestQuality(f, () => true);
}

/**
 * Minimum held-out perplexity on our held-out set; ties go to the earlier epoch (as HF's Trainer,
 * which only replaces its best checkpoint on a strict improvement, would break them).
 */
export function selectMinPerplexity(f: EpochFigures): number {
  return selectMinimum(f.epochs, f.perplexity);
}

/**
 * Index of the smallest finite value in `values` (index-aligned with `epochs`; NaN = not
 * measured, skipped), ties to the earlier epoch; -1 when none is finite. With the trainer's
 * eval_loss per checkpoint this is what HF's load_best_model_at_end with
 * metric_for_best_model='loss' (greater_is_better false) picks: it replaces its best checkpoint
 * only on a strict improvement.
 */
export function selectMinimum(epochs: readonly number[], values: ArrayLike<number>): number {
  let best = -1;
  for (let i = 0; i < epochs.length; i++) {
    const p = values[i]!;
    if (!Number.isFinite(p)) continue;
    if (best < 0) {
      best = i;
      continue;
    }
    const pb = values[best]!;
    if (p < pb && !sameValue(p, pb)) best = i;
    else if (sameValue(p, pb) && epochs[i]! < epochs[best]!) best = i;
  }
  return best;
}

/** The last epoch that was evaluated at all. */
export function selectLast(f: EpochFigures): number {
  let best = -1;
  for (let i = 0; i < f.epochs.length; i++) {
    if (!Number.isFinite(f.perplexity[i]!) && !Number.isFinite(f.quality[i]!)) continue;
    if (best < 0 || f.epochs[i]! > f.epochs[best]!) best = i;
  }
  return best;
}
