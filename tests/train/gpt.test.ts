// The tfjs GPT's hand-written gradients and the optimizer, checked against plain autodiff and
// against arithmetic done by hand.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/train/backend.ts';
import { matmul2d, embedRows, initWeights, toParams, disposeParams, maskedNll, logits } from '../../src/model/gpt.ts';
import { createAdamWState, adamwStep, serializeAdamW, restoreAdamW } from '../../src/train/adamw.ts';
import { dropoutProfile, learningRate, makeBatch } from '../../src/train/run.ts';
import { referenceForward } from '../../src/model/reference-forward.ts';
import { mulberry32 } from '../../src/util/rng.ts';

before(async () => {
  await initBackend('wasm');
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('matmul2d gradients equal tf.matMul autodiff', () => {
  const a = tf.randomNormal([5, 7], 0, 1, 'float32', 1) as tf.Tensor2D;
  const b = tf.randomNormal([7, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
  const w = tf.randomNormal([5, 3], 0, 1, 'float32', 3);
  const mine = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matmul2d(x as tf.Tensor2D, y as tf.Tensor2D), w)))([a, b]);
  const plain = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), w)))([a, b]);
  assert.ok(maxAbsDiff(mine[0]!.dataSync(), plain[0]!.dataSync()) < 1e-5);
  assert.ok(maxAbsDiff(mine[1]!.dataSync(), plain[1]!.dataSync()) < 1e-5);
});

test('the embedding gradient (ScatterNd) sums repeated ids like a one-hot matmul', () => {
  const table = tf.randomNormal([6, 4], 0, 1, 'float32', 4) as tf.Tensor2D;
  const ids = tf.tensor1d([2, 5, 2, 0, 2], 'int32');
  const w = tf.randomNormal([5, 4], 0, 1, 'float32', 5);
  const [mine] = tf.grads((t: tf.Tensor) => tf.sum(tf.mul(embedRows(t as tf.Tensor2D, ids), w)))([table]);
  const oneHot = tf.oneHot(ids, 6).toFloat() as tf.Tensor2D;
  const [viaMatmul] = tf.grads((t: tf.Tensor) => tf.sum(tf.mul(tf.matMul(oneHot, t as tf.Tensor2D), w)))([table]);
  assert.ok(maxAbsDiff(mine!.dataSync(), viaMatmul!.dataSync()) < 1e-5);
  // Row 2 was used three times: its gradient is the sum of three rows of w.
  const wRows = w.arraySync() as number[][];
  const expected = wRows[0]!.map((_, j) => wRows[0]![j]! + wRows[2]![j]! + wRows[4]![j]!);
  assert.ok(maxAbsDiff((mine!.arraySync() as number[][])[2]!, expected) < 1e-5);
  assert.deepEqual((mine!.arraySync() as number[][])[3], [0, 0, 0, 0]);
});

test('the tfjs forward equals the plain-TypeScript reference forward', () => {
  const model = { vocab: 50, context: 16, dModel: 12, layers: 2, heads: 3 };
  const weights = initWeights(model, 3);
  // Larger than init so the comparison is not dominated by near-zero logits.
  for (const w of weights.values()) if (w.shape.length === 2) w.data.forEach((v, i) => (w.data[i] = v * 15));
  const params = toParams(weights);
  const ids = [[1, 7, 9, 3, 4, 40, 22, 5]];
  const mine = tf.tidy(() => logits(params, model, tf.tensor2d(ids, [1, 8], 'int32')).dataSync());
  const ref = referenceForward(model, weights, { inputIds: ids, attentionMask: [ids[0]!.map(() => 1)], positionIds: [ids[0]!.map((_, t) => t)] });
  let scale = 0;
  for (const v of ref.logits) scale = Math.max(scale, Math.abs(v));
  assert.ok(scale > 0.5);
  assert.ok(maxAbsDiff(mine, ref.logits) / scale < 1e-4);
  disposeParams(params);
});

test('the loss is the mean NLL over response targets only: prompt targets carry no loss', () => {
  const model = { vocab: 40, context: 16, dModel: 8, layers: 1, heads: 2 };
  const weights = initWeights(model, 9);
  for (const w of weights.values()) if (w.shape.length === 2) w.data.forEach((v, i) => (w.data[i] = v * 20));
  const params = toParams(weights);
  const ids = [3, 11, 12, 13, 4, 21, 22, 1];
  const lossMask = [0, 0, 0, 0, 0, 1, 1, 1]; // user turn, then the assistant's response and eot
  const batch = makeBatch([{ ids, lossMask }]);
  const loss = tf.tidy(() => maskedNll(params, model, batch.inputs, batch.targets, batch.mask).dataSync()[0]!);
  const ref = referenceForward(model, weights, { inputIds: [ids.slice(0, -1)], attentionMask: [ids.slice(0, -1).map(() => 1)], positionIds: [ids.slice(0, -1).map((_, t) => t)] });
  let nll = 0;
  for (let t = 0; t < ids.length - 1; t++) {
    if (!lossMask[t + 1]) continue;
    const row = Array.from(ref.logits.subarray(t * model.vocab, (t + 1) * model.vocab));
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    nll += lse - row[ids[t + 1]!]!;
  }
  assert.ok(Math.abs(loss - nll / 3) < 1e-4, `tfjs ${loss} vs reference ${nll / 3}`);
  // Had the prompt's targets been scored, the mean would run over 7 targets, not 3. With no
  // scored target the loss is 0 (not NaN).
  const none = makeBatch([{ ids, lossMask: ids.map(() => 0) }]);
  assert.equal(Math.abs(tf.tidy(() => maskedNll(params, model, none.inputs, none.targets, none.mask).dataSync()[0]!)), 0);
  disposeParams(params);
});

test('AdamW: one step by hand, decoupled decay on matrices only', () => {
  const params = new Map<string, tf.Variable>([
    ['w', tf.variable(tf.tensor2d([[1, -2]], [1, 2]))],
    ['b', tf.variable(tf.tensor1d([0.5]))],
  ]);
  const state = createAdamWState(params);
  const s = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const lr = 0.01;
  adamwStep(params, { w: tf.tensor2d([[0.3, -0.4]], [1, 2]), b: tf.tensor1d([2]) }, state, lr, s);
  // After one step m/(1-b1) = g and v/(1-b2) = g^2, so the update is g/(|g|+eps) = sign(g).
  const w = params.get('w')!.dataSync();
  assert.ok(Math.abs(w[0]! - (1 * (1 - lr * 0.1) - lr)) < 1e-6);
  assert.ok(Math.abs(w[1]! - (-2 * (1 - lr * 0.1) + lr)) < 1e-6);
  const b = params.get('b')!.dataSync();
  assert.ok(Math.abs(b[0]! - (0.5 - lr)) < 1e-6, 'no decay on a 1-D tensor');
  // Second step with a different gradient: compare with the formula written out.
  adamwStep(params, { w: tf.tensor2d([[0.1, 0.2]], [1, 2]), b: tf.tensor1d([-1]) }, state, lr, s);
  const m = 0.9 * (0.1 * 0.3) + 0.1 * 0.1;
  const v = 0.95 * (0.05 * 0.09) + 0.05 * 0.01;
  const update = m / (1 - 0.81) / (Math.sqrt(v / (1 - 0.95 ** 2)) + 1e-8);
  const w0 = (1 * (1 - lr * 0.1) - lr) * (1 - lr * 0.1) - lr * update;
  assert.ok(Math.abs(params.get('w')!.dataSync()[0]! - w0) < 1e-6);
  // The state round-trips through its serialised form.
  const saved = serializeAdamW(params, state);
  const restored = createAdamWState(params);
  restoreAdamW(params, restored, saved.bin, saved.json, 'test');
  assert.equal(restored.step, 2);
  assert.deepEqual(Array.from(restored.m.get('w')!.dataSync()), Array.from(state.m.get('w')!.dataSync()));
  assert.deepEqual(Array.from(restored.v.get('b')!.dataSync()), Array.from(state.v.get('b')!.dataSync()));
});

test('learning rate decays linearly without warm-up; dropout rises with depth', () => {
  assert.equal(learningRate(0, 150, 1e-5, 1e-6), 1e-5);
  assert.ok(Math.abs(learningRate(149, 150, 1e-5, 1e-6) - 1e-6) < 1e-18);
  assert.ok(Math.abs(learningRate(75, 151, 1e-5, 1e-6) - 5.5e-6) < 1e-15);
  assert.deepEqual(dropoutProfile(4, 0, 0.3).map((x) => Math.round(x * 100) / 100), [0, 0.1, 0.2, 0.3]);
  assert.deepEqual(dropoutProfile(1, 0, 0.2), [0.2]);
});

test('initialisation is seeded', () => {
  const model = { vocab: 30, context: 8, dModel: 8, layers: 1, heads: 2 };
  const a = initWeights(model, 1).get('h.0.attn.wqkv')!.data;
  assert.deepEqual(initWeights(model, 1).get('h.0.attn.wqkv')!.data, a);
  assert.notDeepEqual(initWeights(model, 2).get('h.0.attn.wqkv')!.data, a);
  const rng = mulberry32(1);
  assert.ok(rng() >= 0);
});
