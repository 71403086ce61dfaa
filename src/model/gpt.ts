// The GPT decoder in tfjs, for training. Reads top to bottom like nanoGPT's model.py:
// token + position embeddings -> pre-LayerNorm blocks (causal self-attention, GELU MLP) ->
// final LayerNorm -> logits through the tied token embedding. Weight names and layouts are the
// contract in weights.ts, shared with the ONNX exporter and the reference forward.
//
// Written for the wasm backend, which is what this machine has: only plain 2D matmuls are fast
// there (transposed ones fall to a naive kernel), so every dense product goes through matmul2d,
// whose gradient transposes explicitly; and wasm lacks UnsortedSegmentSum (the gradient of
// gather), so the embedding lookup gets its own gradient through ScatterNd.
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.ts';
import { LAYER_NORM_EPS, weightShapes, type NamedWeights } from './weights.ts';
import { gaussian, mulberry32 } from '../util/rng.ts';

export type Params = Map<string, tf.Variable>;

/** y = a @ b for 2D a [m, k], b [k, n]; the gradient uses explicit transposes so that every
 *  product stays a plain (fast) 2D matmul on wasm. */
export const matmul2d = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** Rows of `table` [vocab, d] for `ids` (flat int32, n) -> [n, d]. The gradient scatters
 *  (summing repeated ids) with ScatterNd instead of gather's UnsortedSegmentSum. */
export function embedRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const lookup = tf.customGrad(((t: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: tf.Tensor) => tf.scatterND(tf.expandDims(ids, 1), dy, t.shape),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (t: tf.Tensor2D) => tf.Tensor2D;
  return lookup(table);
}

function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor2D {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, LAYER_NORM_EPS))), gamma), beta) as tf.Tensor2D;
}

/** GELU, tanh approximation (as GPT-2 and the ONNX export). */
// x*x*x rather than pow(x, 3): Pow is several times slower on wasm.
function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.mul(tf.mul(x, x), x))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

function linear(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  return tf.add(matmul2d(x, w as tf.Tensor2D), b) as tf.Tensor2D;
}

const causalMasks = new Map<number, tf.Tensor2D>();
/** [T, T] additive mask: 0 where a query may attend, -1e9 on future positions. Kept for reuse. */
function causalMask(length: number): tf.Tensor2D {
  let mask = causalMasks.get(length);
  if (!mask) {
    const values = new Float32Array(length * length);
    for (let q = 0; q < length; q++) for (let k = q + 1; k < length; k++) values[q * length + k] = -1e9;
    mask = tf.keep(tf.tensor2d(values, [length, length]));
    causalMasks.set(length, mask);
  }
  return mask;
}

/** Causal multi-head self-attention over x [B*T, d] -> [B*T, d]. */
function attention(x: tf.Tensor2D, params: Params, layer: number, c: ModelConfig, batch: number, length: number): tf.Tensor2D {
  const p = (name: string) => params.get(`h.${layer}.attn.${name}`)!;
  const d = c.dModel;
  const headDim = d / c.heads;
  const qkv = linear(x, p('wqkv'), p('bqkv'));
  const [q, k, v] = tf.split(qkv, 3, 1);
  // [B*T, d] -> [B*heads, T, headDim]
  const toHeads = (t: tf.Tensor) =>
    tf.reshape(tf.transpose(tf.reshape(t, [batch, length, c.heads, headDim]), [0, 2, 1, 3]), [batch * c.heads, length, headDim]) as tf.Tensor3D;
  const scores = tf.add(tf.mul(tf.matMul(toHeads(q!), toHeads(k!), false, true), 1 / Math.sqrt(headDim)), causalMask(length));
  const context = tf.matMul(tf.softmax(scores), toHeads(v!));
  const merged = tf.reshape(tf.transpose(tf.reshape(context, [batch, c.heads, length, headDim]), [0, 2, 1, 3]), [batch * length, d]) as tf.Tensor2D;
  return linear(merged, p('wo'), p('bo'));
}

function mlp(x: tf.Tensor2D, params: Params, layer: number): tf.Tensor2D {
  const p = (name: string) => params.get(`h.${layer}.mlp.${name}`)!;
  return linear(gelu(linear(x, p('w1'), p('b1'))) as tf.Tensor2D, p('w2'), p('b2'));
}

export interface ForwardOptions {
  /** Residual dropout rate per layer (length = layers); none when absent (evaluation). */
  dropout?: number[];
  /** Seed for this step's dropout masks. */
  dropoutSeed?: number;
  /** Given residual-dropout masks ([B*T, d], 0 or 1/(1-rate)) per layer instead of tf.dropout's:
   *  the reference for engines that draw their own masks (src/train/batch.ts dropoutMasks). */
  dropoutMasks?: Array<{ attn: tf.Tensor; mlp: tf.Tensor } | undefined>;
}

/** Final hidden states [B*T, d] for ids [B, T] (after the final LayerNorm). */
export function hiddenStates(params: Params, c: ModelConfig, ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor2D {
  const [batch, length] = ids.shape;
  if (length > c.context) throw new Error(`sequence of ${length} tokens exceeds the model's context of ${c.context}`);
  const tokens = embedRows(params.get('wte')! as tf.Tensor2D, tf.reshape(ids, [-1]) as tf.Tensor1D);
  const positions = tf.slice(params.get('wpe')!, [0, 0], [length, c.dModel]);
  let x = tf.reshape(tf.add(tf.reshape(tokens, [batch, length, c.dModel]), positions), [batch * length, c.dModel]) as tf.Tensor2D;
  const drop = (t: tf.Tensor2D, layer: number, which: number): tf.Tensor2D => {
    const given = options.dropoutMasks?.[layer];
    if (given) return tf.mul(t, which === 0 ? given.attn : given.mlp) as tf.Tensor2D;
    const rate = options.dropout?.[layer] ?? 0;
    return rate > 0 ? (tf.dropout(t, rate, undefined, (options.dropoutSeed ?? 0) + layer * 2 + which) as tf.Tensor2D) : t;
  };
  for (let layer = 0; layer < c.layers; layer++) {
    const p = (name: string) => params.get(`h.${layer}.${name}`)!;
    x = tf.add(x, drop(attention(layerNorm(x, p('ln1.gamma'), p('ln1.beta')), params, layer, c, batch, length), layer, 0));
    x = tf.add(x, drop(mlp(layerNorm(x, p('ln2.gamma'), p('ln2.beta')), params, layer), layer, 1));
  }
  return layerNorm(x, params.get('lnf.gamma')!, params.get('lnf.beta')!);
}

/** Logits [B*T, vocab] through the output projection tied to the token embedding. */
export function logits(params: Params, c: ModelConfig, ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor2D {
  return matmul2d(hiddenStates(params, c, ids, options), tf.transpose(params.get('wte')! as tf.Tensor2D));
}

/**
 * Mean negative log-likelihood over the masked targets: inputs [B, T], targets [B, T] (int32),
 * mask [B, T] (1 = scored). Returns a scalar; the caller divides nothing further.
 */
export function maskedNll(params: Params, c: ModelConfig, inputs: tf.Tensor2D, targets: tf.Tensor2D, mask: tf.Tensor2D, options: ForwardOptions = {}): tf.Scalar {
  const logProbs = tf.logSoftmax(logits(params, c, inputs, options));
  const picked = tf.sum(tf.mul(logProbs, tf.oneHot(tf.reshape(targets, [-1]) as tf.Tensor1D, c.vocab)), -1);
  const flatMask = tf.reshape(mask, [-1]);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, flatMask))), tf.maximum(tf.sum(flatMask), 1)) as tf.Scalar;
}

/** Seeded initialisation as nanoGPT: N(0, 0.02) for matrices and embeddings, residual output
 *  projections scaled by 1/sqrt(2 * layers), zero biases, LayerNorm at identity. */
export function initWeights(c: ModelConfig, seed: number): NamedWeights {
  const rng = mulberry32(seed);
  const weights: NamedWeights = new Map();
  for (const [name, shape] of weightShapes(c)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (name.endsWith('.gamma')) data.fill(1);
    else if (shape.length === 2) {
      const std = /\.(attn\.wo|mlp\.w2)$/.test(name) ? 0.02 / Math.sqrt(2 * c.layers) : 0.02;
      for (let i = 0; i < size; i++) data[i] = std * gaussian(rng);
    }
    weights.set(name, { shape, data });
  }
  return weights;
}

export function toParams(weights: NamedWeights): Params {
  const params: Params = new Map();
  for (const [name, w] of weights) params.set(name, tf.variable(tf.tensor(w.data, w.shape), true)); // unnamed: tfjs names must be unique per process
  return params;
}

export function fromParams(params: Params): NamedWeights {
  const weights: NamedWeights = new Map();
  for (const [name, v] of params) weights.set(name, { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) });
  return weights;
}

export function disposeParams(params: Params): void {
  for (const v of params.values()) v.dispose();
}
