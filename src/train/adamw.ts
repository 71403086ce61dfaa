// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, as PyTorch's
// torch.optim.AdamW. tfjs ships Adam only, whose "decay" would go through the moments.
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p * (1 - lr * wd)  -  lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// Decay applies to matrices and embeddings only (2-D tensors), not to biases or LayerNorm, as
// Hugging Face's Trainer (LIMA's setup) and nanoGPT do.
import * as tf from '@tensorflow/tfjs';
import type { Params } from '../model/gpt.ts';
import type { NamedWeights } from '../model/weights.ts';

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface AdamWState {
  step: number;
  m: Map<string, tf.Variable>;
  v: Map<string, tf.Variable>;
}

export function createAdamWState(params: Params): AdamWState {
  const m = new Map<string, tf.Variable>();
  const v = new Map<string, tf.Variable>();
  for (const [name, p] of params) {
    m.set(name, tf.variable(tf.zerosLike(p), false));
    v.set(name, tf.variable(tf.zerosLike(p), false));
  }
  return { step: 0, m, v };
}

export function decays(shape: readonly number[]): boolean {
  return shape.length >= 2;
}

/** One AdamW step with learning rate `lr`; gradients are consumed (disposed). */
export function adamwStep(params: Params, grads: Record<string, tf.Tensor>, state: AdamWState, lr: number, s: AdamWSettings): void {
  state.step += 1;
  const t = state.step;
  const correction1 = 1 - s.beta1 ** t;
  const correction2 = 1 - s.beta2 ** t;
  for (const [name, p] of params) {
    const g = grads[name];
    if (!g) throw new Error(`adamw: no gradient for ${name}`);
    const m = state.m.get(name)!;
    const v = state.v.get(name)!;
    tf.tidy(() => {
      const mNew = tf.add(tf.mul(m, s.beta1), tf.mul(g, 1 - s.beta1));
      const vNew = tf.add(tf.mul(v, s.beta2), tf.mul(tf.square(g), 1 - s.beta2));
      const update = tf.div(tf.div(mNew, correction1), tf.add(tf.sqrt(tf.div(vNew, correction2)), s.eps));
      const decayed = decays(p.shape) && s.weightDecay > 0 ? tf.mul(p, 1 - lr * s.weightDecay) : p;
      p.assign(tf.sub(decayed, tf.mul(update, lr)));
      m.assign(mNew);
      v.assign(vNew);
    });
    g.dispose();
  }
}

/** Moments as one float32 buffer (m then v for each tensor, in params order) for checkpoints. */
export function serializeAdamW(params: Params, state: AdamWState): { bin: Uint8Array; json: string } {
  const parts: Float32Array[] = [];
  const names: string[] = [];
  for (const name of params.keys()) {
    names.push(name);
    parts.push(state.m.get(name)!.dataSync() as Float32Array, state.v.get(name)!.dataSync() as Float32Array);
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const all = new Float32Array(total);
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return { bin: new Uint8Array(all.buffer), json: JSON.stringify({ step: state.step, names }) };
}

export function restoreAdamW(params: Params, state: AdamWState, bin: Uint8Array, json: string, where: string): void {
  const meta = JSON.parse(json) as { step: number; names: string[] };
  const names = [...params.keys()];
  if (meta.names.join(',') !== names.join(',')) throw new Error(`${where}: optimizer state is for other tensors than this model's`);
  const floats = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  let offset = 0;
  for (const name of names) {
    const p = params.get(name)!;
    for (const moments of [state.m, state.v]) {
      const size = p.size;
      if (offset + size > floats.length) throw new Error(`${where}: optimizer state is truncated`);
      tf.tidy(() => moments.get(name)!.assign(tf.tensor(floats.slice(offset, offset + size), p.shape)));
      offset += size;
    }
  }
  if (offset !== floats.length) throw new Error(`${where}: optimizer state has ${floats.length - offset} extra values`);
  state.step = meta.step;
}

export function disposeAdamW(state: AdamWState): void {
  for (const x of [...state.m.values(), ...state.v.values()]) x.dispose();
}

/** AdamW state over plain arrays (the onnxruntime engine): same update, same checkpoint format. */
export interface PlainAdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export function createPlainAdamW(weights: NamedWeights): PlainAdamWState {
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, w] of weights) {
    m.set(name, new Float32Array(w.data.length));
    v.set(name, new Float32Array(w.data.length));
  }
  return { step: 0, m, v };
}

/** One AdamW step on `weights` in place (the formula at the top of this file); float64
 *  arithmetic per element, stored as float32. */
export function adamwStepPlain(weights: NamedWeights, grads: ReadonlyMap<string, Float32Array>, state: PlainAdamWState, lr: number, s: AdamWSettings): void {
  state.step += 1;
  const t = state.step;
  const correction1 = 1 - s.beta1 ** t;
  const correction2 = 1 - s.beta2 ** t;
  const { beta1, beta2, eps } = s;
  for (const [name, w] of weights) {
    const g = grads.get(name);
    if (!g || g.length !== w.data.length) throw new Error(`adamw: no gradient of the right size for ${name}`);
    const m = state.m.get(name)!;
    const v = state.v.get(name)!;
    const p = w.data;
    const keep = decays(w.shape) && s.weightDecay > 0 ? 1 - lr * s.weightDecay : 1;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]!;
      const mi = beta1 * m[i]! + (1 - beta1) * gi;
      const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i]! * keep - (lr * (mi / correction1)) / (Math.sqrt(vi / correction2) + eps);
    }
  }
}

/** As serializeAdamW: m then v for each tensor in weights order, float32. */
export function serializePlainAdamW(weights: NamedWeights, state: PlainAdamWState): { bin: Uint8Array; json: string } {
  const names = [...weights.keys()];
  const total = names.reduce((a, n) => a + 2 * weights.get(n)!.data.length, 0);
  const all = new Float32Array(total);
  let offset = 0;
  for (const name of names) {
    for (const part of [state.m.get(name)!, state.v.get(name)!]) {
      all.set(part, offset);
      offset += part.length;
    }
  }
  return { bin: new Uint8Array(all.buffer), json: JSON.stringify({ step: state.step, names }) };
}

export function restorePlainAdamW(weights: NamedWeights, state: PlainAdamWState, bin: Uint8Array, json: string, where: string): void {
  const meta = JSON.parse(json) as { step: number; names: string[] };
  const names = [...weights.keys()];
  if (meta.names.join(',') !== names.join(',')) throw new Error(`${where}: optimizer state is for other tensors than this model's`);
  const floats = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  let offset = 0;
  for (const name of names) {
    const size = weights.get(name)!.data.length;
    for (const moments of [state.m, state.v]) {
      if (offset + size > floats.length) throw new Error(`${where}: optimizer state is truncated`);
      moments.set(name, floats.slice(offset, offset + size));
      offset += size;
    }
  }
  if (offset !== floats.length) throw new Error(`${where}: optimizer state has ${floats.length - offset} extra values`);
  state.step = meta.step;
}
