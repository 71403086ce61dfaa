// Plain-TS statistics, exact and allocation-light so the bootstrap loop can call them
// thousands of times. Undefined results (too few points, a constant vector) are NaN here;
// the metrics layer turns NaN into null for JSON.
import type { Rng } from '../util/rng.ts';

export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return values.length === 0 ? NaN : sum / values.length;
}

/** Mean of the finite entries (NaN when there are none). */
export function meanFinite(values: ArrayLike<number>): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isFinite(v)) {
      sum += v;
      n++;
    }
  }
  return n === 0 ? NaN : sum / n;
}

/** Quantile with linear interpolation between order statistics (R type 7); ignores NaN. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Array.from(values).filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * Percentile interval (default 95%) of bootstrap replicates. NaN replicates (the statistic was
 * undefined in that resample) are left out, so a caller that can produce them must count them:
 * replicateSummary does both.
 */
export function percentileInterval(replicates: ArrayLike<number>, level = 0.95): [number, number] {
  const alpha = (1 - level) / 2;
  return [quantile(replicates, alpha), quantile(replicates, 1 - alpha)];
}

export interface ReplicateSummary {
  /** Percentile interval over the defined replicates (NaN when none is defined). */
  low: number;
  high: number;
  /** All replicates, defined or not. */
  replicates: number;
  /** Replicates that are NaN: the statistic was undefined in that resample. */
  undefinedReplicates: number;
}

/** The percentile interval at `level` (0..1) and how many replicates it left out as undefined. */
export function replicateSummary(replicates: ArrayLike<number>, level: number): ReplicateSummary {
  let undefinedReplicates = 0;
  for (let i = 0; i < replicates.length; i++) if (Number.isNaN(replicates[i]!)) undefinedReplicates++;
  const [low, high] = percentileInterval(replicates, level);
  return { low, high, replicates: replicates.length, undefinedReplicates };
}

/** True when every entry equals the first (compared exactly, not up to rounding). */
export function isConstant(values: ArrayLike<number>): boolean {
  for (let i = 1; i < values.length; i++) if (values[i] !== values[0]) return false;
  return true;
}

/**
 * Pearson's r; NaN when n < 2 or either vector is constant. Constancy is checked exactly: the
 * mean of n copies of 4.05 is not 4.05 in floating point, and the rounding residue would
 * otherwise give a constant vector an r (0 or any value) instead of none.
 */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n !== y.length) throw new Error(`pearson: length mismatch (${n} vs ${y.length})`);
  if (n < 2 || isConstant(x) || isConstant(y)) return NaN;
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  // sqrt of each factor: their product can underflow to 0 for tiny spreads.
  return Math.max(-1, Math.min(1, sxy / (Math.sqrt(sxx) * Math.sqrt(syy))));
}

/** 1-based ranks; tied values share the average of the ranks they span. */
export function averageRanks(values: ArrayLike<number>): number[] {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const ranks = new Array<number>(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && values[order[j + 1]!] === values[order[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]!] = rank;
    i = j + 1;
  }
  return ranks;
}

/** Spearman's rho: Pearson on average ranks (correct with ties). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return pearson(averageRanks(x), averageRanks(y));
}

/** Kendall's tau-b: (concordant - discordant) / sqrt((n0 - tiesX) (n0 - tiesY)). */
export function kendallTauB(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n !== y.length) throw new Error(`kendallTauB: length mismatch (${n} vs ${y.length})`);
  let concordant = 0;
  let discordant = 0;
  let tiedX = 0;
  let tiedY = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = Math.sign(x[i]! - x[j]!);
      const dy = Math.sign(y[i]! - y[j]!);
      if (dx === 0) tiedX++;
      if (dy === 0) tiedY++;
      if (dx !== 0 && dy !== 0) {
        if (dx === dy) concordant++;
        else discordant++;
      }
    }
  }
  const n0 = (n * (n - 1)) / 2;
  const denom = Math.sqrt((n0 - tiedX) * (n0 - tiedY));
  return denom === 0 ? NaN : (concordant - discordant) / denom;
}

export type CorrelationStat = (x: ArrayLike<number>, y: ArrayLike<number>) => number;

export interface PermutationResult {
  p: number;
  /** Permutations evaluated (n! when exact). */
  permutations: number;
  exact: boolean;
}

/** Largest n for which all n! pairings are enumerated (8! = 40320). */
export const MAX_EXACT_PERMUTATION_N = 8;

/**
 * Two-sided permutation p-value: the share of pairings of x with permuted y whose |stat| is at
 * least the observed |stat|. Exact over all n! pairings (identity included) when n is small,
 * so a perfectly monotone 4-point case gives 2/24 (identity and reversal). Otherwise seeded
 * Monte Carlo with the usual (1 + hits) / (1 + draws).
 */
export function permutationPValue(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  stat: CorrelationStat,
  rng: Rng,
  monteCarloDraws = 10000,
): PermutationResult {
  const n = x.length;
  const observed = Math.abs(stat(x, y));
  if (!Number.isFinite(observed)) return { p: NaN, permutations: 0, exact: false };
  // Guards float noise so that pairings with the same |stat| count as "at least as extreme".
  const threshold = observed - 1e-12;
  const permuted = Float64Array.from(y);
  const isExtreme = () => {
    const r = Math.abs(stat(x, permuted));
    return Number.isFinite(r) && r >= threshold;
  };
  if (n <= MAX_EXACT_PERMUTATION_N) {
    // Heap's algorithm visits every permutation of `permuted` once.
    let hits = isExtreme() ? 1 : 0;
    let total = 1;
    const c = new Array<number>(n).fill(0);
    let i = 1;
    while (i < n) {
      if (c[i]! < i) {
        const j = i % 2 === 0 ? 0 : c[i]!;
        const tmp = permuted[j]!;
        permuted[j] = permuted[i]!;
        permuted[i] = tmp;
        if (isExtreme()) hits++;
        total++;
        c[i]!++;
        i = 1;
      } else {
        c[i] = 0;
        i++;
      }
    }
    return { p: hits / total, permutations: total, exact: true };
  }
  let hits = 0;
  for (let d = 0; d < monteCarloDraws; d++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      const tmp = permuted[i]!;
      permuted[i] = permuted[j]!;
      permuted[j] = tmp;
    }
    if (isExtreme()) hits++;
  }
  return { p: (1 + hits) / (1 + monteCarloDraws), permutations: monteCarloDraws, exact: false };
}

/** Percentile bootstrap interval for the mean of `values`. */
export function bootstrapMeanInterval(values: ArrayLike<number>, resamples: number, rng: Rng, level = 0.95): [number, number] {
  const n = values.length;
  const replicates = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[Math.floor(rng() * n)]!;
    replicates[b] = sum / n;
  }
  return percentileInterval(replicates, level);
}
