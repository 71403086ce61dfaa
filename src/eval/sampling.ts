// LIMA's decoding step on one logits row: repetition penalty on tokens already generated
// (CTRL-style), temperature, nucleus (top-p) filtering, then one seeded draw.
import type { Rng } from '../util/rng.ts';
import type { GenerationConfig } from './config.ts';

/**
 * CTRL-style penalty (Keskar et al. 2019, as in Hugging Face's RepetitionPenaltyLogitsProcessor):
 * a token already generated gets its logit divided by `penalty` when positive and multiplied when
 * negative, so it always becomes less likely. Each distinct token is penalised once. In place.
 */
export function applyRepetitionPenalty(logits: Float32Array, generated: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(generated)) {
    const v = logits[id]!;
    logits[id] = v > 0 ? v / penalty : v * penalty;
  }
}

export interface Candidates {
  /** Token ids kept by the nucleus, in id order (any fixed order samples the same distribution). */
  ids: number[];
  /** Their probabilities renormalised over the kept set (sum 1). */
  probs: number[];
}

/**
 * Softmax(logits / temperature), then the smallest set of most probable tokens whose total
 * probability reaches `topP` (the token that crosses the threshold is kept; among tokens of
 * equal probability at the boundary, lower ids first).
 */
export function nucleus(logits: Float32Array, temperature: number, topP: number): Candidates {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const weights = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const w = Math.exp((logits[i]! - max) / temperature);
    weights[i] = w;
    total += w;
  }
  // Find how many tokens the nucleus needs from the weights alone (a native numeric sort, much
  // cheaper per decoding step than sorting ids with a comparator), then collect just those ids.
  // Only weights >= total * (1 - topP) / n can be needed: the rest sum to less than 1 - topP of
  // the total. Sorting just those gives the same prefix as sorting all n; the full sort remains
  // for when rounding leaves the prefix short.
  /** How many of the largest `sorted` weights it takes to reach topP; 0 if even all of them fall short. */
  const nucleusCount = (sorted: Float64Array): number => {
    let cumulative = 0;
    for (let count = 1; count <= sorted.length; count++) {
      cumulative += sorted[count - 1]! / total;
      // A tiny tolerance so p = 1 keeps everything despite rounding, and exact hits stop.
      if (cumulative >= topP - 1e-12) return count;
    }
    return 0;
  };
  const cutoff = (total * Math.max(0, 1 - topP)) / n;
  const candidates = new Float64Array(n);
  let candidateCount = 0;
  for (let i = 0; i < n; i++) if (weights[i]! >= cutoff) candidates[candidateCount++] = weights[i]!;
  let sorted = candidates.subarray(0, candidateCount).sort().reverse();
  let count = nucleusCount(sorted);
  if (count === 0) {
    sorted = weights.slice().sort().reverse();
    count = nucleusCount(sorted) || n; // rounding short of topP over every token: keep them all
  }
  const threshold = sorted[count - 1]!;
  let above = 0;
  while (above < count && sorted[above]! > threshold) above++;
  let tiesWanted = count - above; // tokens at exactly the threshold weight, lowest ids first
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    if (weights[i]! > threshold) ids.push(i);
    else if (weights[i] === threshold && tiesWanted > 0) {
      ids.push(i);
      tiesWanted--;
    }
  }
  const kept = ids.reduce((sum, id) => sum + weights[id]!, 0);
  return { ids, probs: ids.map((id) => weights[id]! / kept) };
}

/** One draw from the candidates with a uniform number u in [0, 1). */
export function drawFrom(c: Candidates, u: number): number {
  let cumulative = 0;
  for (let i = 0; i < c.ids.length; i++) {
    cumulative += c.probs[i]!;
    if (u < cumulative) return c.ids[i]!;
  }
  return c.ids[c.ids.length - 1]!;
}

/**
 * The next token: penalty on `generated`, temperature, top-p, one draw from `rng`. Copies the row.
 * Temperature 0 is greedy decoding: the most likely token after the penalty (lowest id on ties),
 * top-p ignored and no draw from `rng` (the `generate` command; studies always sample).
 */
export function sampleNext(logitsRow: Float32Array, generated: readonly number[], cfg: GenerationConfig, rng: Rng): number {
  const logits = Float32Array.from(logitsRow);
  applyRepetitionPenalty(logits, generated, cfg.repetitionPenalty);
  if (cfg.temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  return drawFrom(nucleus(logits, cfg.temperature, cfg.topP), rng());
}
