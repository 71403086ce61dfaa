// Epoch-selection rules. The study's rule: highest mean dev quality inside an inclusive epoch
// window, ties to lower held-out perplexity, then the earlier epoch. The alternatives are what
// a user would otherwise do (HF's load_best_model_at_end on eval loss, the last epoch, the best
// epoch anywhere), reported side by side.

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
 * Minimum held-out perplexity; like HF's Trainer (which only replaces the best checkpoint on a
 * strict improvement) ties go to the earlier epoch.
 */
export function selectMinPerplexity(f: EpochFigures): number {
  let best = -1;
  for (let i = 0; i < f.epochs.length; i++) {
    const p = f.perplexity[i]!;
    if (!Number.isFinite(p)) continue;
    if (best < 0) {
      best = i;
      continue;
    }
    const pb = f.perplexity[best]!;
    if (p < pb && !sameValue(p, pb)) best = i;
    else if (sameValue(p, pb) && f.epochs[i]! < f.epochs[best]!) best = i;
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
