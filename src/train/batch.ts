// Training batches as plain arrays, shared by the engines (tfjs wraps them in tensors, the
// onnxruntime engine in ort tensors), and the residual-dropout masks drawn from the project's RNG.
import { deriveSeed, mulberry32, shuffleInPlace } from '../util/rng.ts';

export interface TrainExample {
  ids: number[];
  /** 1 where ids[t] is a target (see chat-format.ts). */
  lossMask: ArrayLike<number>;
}

export interface BatchArrays {
  batch: number;
  /** Positions per row (the longest example's length - 1). */
  length: number;
  /** [batch * length] row-major; right padding is 0. */
  inputs: Int32Array;
  targets: Int32Array;
  /** [batch * length], 1 = scored target. */
  mask: Float32Array;
  /** Input positions that are not padding (throughput). */
  tokens: number;
  /** Scored targets (loss denominator). */
  scored: number;
}

/** Right-padded batch: inputs ids[0..n-2], targets ids[1..n-1], mask from the loss mask. */
export function makeBatchArrays(examples: TrainExample[]): BatchArrays {
  const length = Math.max(...examples.map((e) => e.ids.length)) - 1;
  if (length < 1) throw new Error('training batch: every example has fewer than 2 tokens');
  const inputs = new Int32Array(examples.length * length);
  const targets = new Int32Array(examples.length * length);
  const mask = new Float32Array(examples.length * length);
  let tokens = 0;
  let scored = 0;
  examples.forEach((e, b) => {
    for (let t = 0; t + 1 < e.ids.length; t++) {
      inputs[b * length + t] = e.ids[t]!;
      targets[b * length + t] = e.ids[t + 1]!;
      mask[b * length + t] = e.lossMask[t + 1]!;
      tokens += 1;
      scored += e.lossMask[t + 1]!;
    }
  });
  return { batch: examples.length, length, inputs, targets, mask, tokens, scored };
}

/**
 * Residual-dropout masks for one step: for each layer with rate r > 0, two [rows, width] masks
 * (attention output, then MLP output) holding 0 with probability r and 1/(1-r) otherwise
 * (inverted dropout, as tf.dropout and torch). Drawn from mulberry32 seeded by
 * (seed, layer, branch), so a step's masks depend on its seed only. Layers with rate 0 get none.
 */
export function dropoutMasks(rates: readonly number[], rows: number, width: number, seed: number): Array<{ attn: Float32Array; mlp: Float32Array } | undefined> {
  return rates.map((rate, layer) => {
    if (!(rate > 0)) return undefined;
    if (rate >= 1) throw new Error(`dropout rate ${rate} for layer ${layer} must be below 1`);
    const keep = 1 / (1 - rate);
    const draw = (branch: string): Float32Array => {
      const rng = mulberry32(deriveSeed(seed, 'dropout', layer, branch));
      const mask = new Float32Array(rows * width);
      for (let i = 0; i < mask.length; i++) mask[i] = rng() < rate ? 0 : keep;
      return mask;
    };
    return { attn: draw('attn'), mlp: draw('mlp') };
  });
}

/**
 * Batches of example indices for one epoch of `n` examples, in an order derived from
 * (seed, phase, epoch) only, so a resumed run draws the same batches. `phase` is "finetune" or
 * "pretrain".
 */
export function epochBatches(n: number, batchSize: number, seed: number, phase: string, epoch: number): number[][] {
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), mulberry32(deriveSeed(seed, phase, 'shuffle', epoch)));
  const batches: number[][] = [];
  for (let i = 0; i < n; i += batchSize) batches.push(order.slice(i, i + batchSize));
  return batches;
}
