// The onnxruntime training engine against the tfjs reference (wasm): the same loss and gradients
// on the same weights and batch, the same gradients with the same dropout masks, finite
// differences on a tiny model, and the same weights after several AdamW steps.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/train/backend.ts';
import { initWeights, toParams, disposeParams, maskedNll } from '../../src/model/gpt.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { weightShapes, type NamedWeights } from '../../src/model/weights.ts';
import { OrtTrainSession, createOrtEngine } from '../../src/train/ort-engine.ts';
import { createTfjsEngine, makeBatch, disposeBatch } from '../../src/train/tfjs-engine.ts';
import { dropoutMasks, makeBatchArrays, type BatchArrays, type TrainExample } from '../../src/train/batch.ts';
import { defaultTrainConfig } from '../../src/train/config.ts';
import { mulberry32 } from '../../src/util/rng.ts';

before(async () => {
  await initBackend('wasm');
});

const settings = { beta1: defaultTrainConfig.beta1, beta2: defaultTrainConfig.beta2, eps: defaultTrainConfig.eps, weightDecay: defaultTrainConfig.weightDecay };

/** Seeded weights, matrices scaled up so that activations, attention and gradients are far from trivial. */
function weightsFor(model: ModelConfig, seed: number, scale: number): NamedWeights {
  const weights = initWeights(model, seed);
  const rng = mulberry32(seed + 1);
  for (const [name, w] of weights) {
    if (w.shape.length === 2) w.data.forEach((v, i) => (w.data[i] = v * scale));
    // Non-trivial LayerNorm and bias parameters, so that their gradients are exercised too.
    else if (name.endsWith('.gamma')) w.data.forEach((_, i) => (w.data[i] = 0.5 + rng()));
    else w.data.forEach((_, i) => (w.data[i] = 0.2 * (rng() - 0.5)));
  }
  return weights;
}

/** Examples of different lengths (right padding) with prompt tokens unscored, and repeated ids. */
function examplesFor(model: ModelConfig, seed: number, lengths: number[]): TrainExample[] {
  const rng = mulberry32(seed);
  return lengths.map((n) => {
    const ids = Array.from({ length: n }, () => Math.floor(rng() * model.vocab));
    ids[n - 1] = ids[0]!; // a repeated id in every row
    return { ids, lossMask: ids.map((_, t) => (t >= Math.floor(n / 3) ? 1 : 0)) };
  });
}

type Masks = ReturnType<typeof dropoutMasks>;

/** tfjs reference loss and gradients (autodiff), optionally with the given dropout masks. */
function tfjsGradients(model: ModelConfig, weights: NamedWeights, examples: TrainExample[], masks?: Masks): { loss: number; grads: Map<string, Float32Array> } {
  const params = toParams(weights);
  const batch = makeBatch(examples);
  const rows = batch.inputs.shape[0] * batch.inputs.shape[1];
  const maskTensors = masks?.map((m) => (m ? { attn: tf.tensor2d(m.attn, [rows, model.dModel]), mlp: tf.tensor2d(m.mlp, [rows, model.dModel]) } : undefined));
  try {
    const { value, grads } = tf.variableGrads(() => maskedNll(params, model, batch.inputs, batch.targets, batch.mask, { dropoutMasks: maskTensors }), [...params.values()]);
    const out = new Map<string, Float32Array>();
    for (const [name, v] of params) out.set(name, grads[v.name]!.dataSync() as Float32Array);
    return { loss: value.dataSync()[0]!, grads: out };
  } finally {
    disposeParams(params);
    disposeBatch(batch);
    for (const m of maskTensors ?? []) if (m) tf.dispose([m.attn, m.mlp]);
  }
}

/** Largest |a - b| over a tensor divided by the largest |b| (the tensor's gradient scale). */
function relativeToScale(a: Float32Array, b: Float32Array): { error: number; scale: number } {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { error: scale > 0 ? diff / scale : diff, scale };
}

function assertGradientsMatch(ours: Map<string, Float32Array>, reference: Map<string, Float32Array>, tolerance: number): void {
  for (const [name, ref] of reference) {
    const { error, scale } = relativeToScale(ours.get(name)!, ref);
    assert.ok(error < tolerance, `${name}: gradient differs by ${error.toExponential(2)} of its scale ${scale.toExponential(2)}`);
  }
}

const model: ModelConfig = { vocab: 37, context: 12, dModel: 16, layers: 2, heads: 2 };

test('ort loss and every gradient match tfjs on the same weights, batch and loss mask (dropout off)', async () => {
  const weights = weightsFor(model, 3, 8);
  const examples = examplesFor(model, 4, [12, 7, 10]);
  const ref = tfjsGradients(model, weights, examples);
  const session = await OrtTrainSession.create(model, { threads: 1 });
  try {
    const ours = await session.run(weights, makeBatchArrays(examples));
    assert.ok(ref.loss > 1, `reference loss ${ref.loss}`);
    assert.ok(Math.abs(ours.loss - ref.loss) / ref.loss < 1e-5, `loss ${ours.loss} vs tfjs ${ref.loss}`);
    assertGradientsMatch(ours.grads, ref.grads, 1e-4);
    // The positions no example reaches get no gradient; the scattered wte rows are sums.
    const wpe = ours.grads.get('wpe')!;
    assert.ok(wpe.subarray(11 * model.dModel).every((v) => v === 0), 'wpe rows beyond the batch length must get zero gradient');
    assert.ok(wpe.subarray(0, model.dModel).some((v) => v !== 0));
  } finally {
    await session.release();
  }
});

test('dropout masks: the same seed gives the same masks, the kept fraction matches the rate, values are 0 or 1/(1-rate)', () => {
  const rates = [0, 0.1, 0.3];
  const a = dropoutMasks(rates, 500, 64, 77);
  const b = dropoutMasks(rates, 500, 64, 77);
  const c = dropoutMasks(rates, 500, 64, 78);
  assert.equal(a[0], undefined, 'no mask for a layer with rate 0');
  for (let layer = 1; layer < rates.length; layer++) {
    const rate = rates[layer]!;
    for (const branch of ['attn', 'mlp'] as const) {
      const m = a[layer]![branch];
      assert.deepEqual(m, b[layer]![branch]);
      assert.notDeepEqual(m, c[layer]![branch]);
      let kept = 0;
      for (const v of m) {
        if (v !== 0) {
          kept += 1;
          assert.equal(v, Math.fround(1 / (1 - rate)));
        }
      }
      // 32,000 draws: the kept fraction's standard error is below 0.003.
      assert.ok(Math.abs(kept / m.length - (1 - rate)) < 0.012, `layer ${layer} ${branch}: kept ${kept / m.length} for rate ${rate}`);
    }
    assert.notDeepEqual(a[layer]!.attn, a[layer]!.mlp, 'the two branches draw different masks');
  }
});

test('with given dropout masks, ort gradients match tfjs applying the same masks', async () => {
  const weights = weightsFor(model, 5, 8);
  const examples = examplesFor(model, 6, [11, 12, 6]);
  const batch = makeBatchArrays(examples);
  const masks = dropoutMasks([0.2, 0.3], batch.batch * batch.length, model.dModel, 99);
  const ref = tfjsGradients(model, weights, examples, masks);
  const plain = tfjsGradients(model, weights, examples);
  assert.ok(Math.abs(ref.loss - plain.loss) > 1e-3, 'the masks must change the loss, or this test checks nothing');
  const session = await OrtTrainSession.create(model, { threads: 1, dropoutLayers: [true, true] });
  try {
    const ours = await session.run(weights, batch, masks);
    assert.ok(Math.abs(ours.loss - ref.loss) / ref.loss < 1e-5, `loss ${ours.loss} vs tfjs ${ref.loss}`);
    assertGradientsMatch(ours.grads, ref.grads, 1e-4);
    await assert.rejects(session.run(weights, batch, [masks[0], undefined]), /layer 1 needs dropout masks/);
  } finally {
    await session.release();
  }
});

test('finite differences: every parameter of a tiny model (~300) against the ort gradient', async () => {
  const tiny: ModelConfig = { vocab: 11, context: 6, dModel: 4, layers: 1, heads: 2 };
  const weights = weightsFor(tiny, 8, 20);
  const examples = examplesFor(tiny, 9, [6, 5]);
  const batch = makeBatchArrays(examples);
  const session = await OrtTrainSession.create(tiny, { threads: 1 });
  try {
    const { grads } = await session.run(weights, batch);
    let count = 0;
    const lossAt = async (i: number, data: Float32Array, value: number): Promise<number> => {
      const saved = data[i]!;
      data[i] = value;
      const loss = (await session.run(weights, batch)).loss;
      data[i] = saved;
      return loss;
    };
    for (const [name, w] of weights) {
      const g = grads.get(name)!;
      let scale = 0;
      for (const v of g) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < w.data.length; i++) {
        // Central differences at h and h/2, Richardson-extrapolated (error O(h^4)); the float32
        // loss adds ~3e-5 of rounding noise at h = 1e-2.
        const x = w.data[i]!;
        const h = 1e-2;
        const central = async (step: number): Promise<number> => ((await lossAt(i, w.data, x + step)) - (await lossAt(i, w.data, x - step))) / (2 * step);
        const numeric = (4 * (await central(h / 2)) - (await central(h))) / 3;
        assert.ok(Math.abs(numeric - g[i]!) <= 1e-3 * scale + 1e-4, `${name}[${i}]: analytic ${g[i]} vs numeric ${numeric} (tensor scale ${scale})`);
        count += 1;
      }
    }
    assert.ok(count > 250 && count < 400, `${count} parameters checked`);
  } finally {
    await session.release();
  }
});

test('weights after several AdamW steps match the tfjs engine within 1e-5', async () => {
  const initial = initWeights(model, 12);
  const ort = createOrtEngine(model, initial, settings, 1);
  const tfjs = createTfjsEngine(model, initial, settings);
  try {
    for (let step = 0; step < 4; step++) {
      const examples = examplesFor(model, 20 + step, [12, 9, 12, 5]);
      const a = await ort.step(examples, 1e-3, undefined, 0);
      const b = await tfjs.step(examples, 1e-3, undefined, 0);
      assert.ok(Math.abs(a.loss - b.loss) / b.loss < 1e-5, `step ${step}: loss ${a.loss} vs ${b.loss}`);
    }
    const ours = ort.weights();
    let moved = 0;
    for (const [name, ref] of tfjs.weights()) {
      const mine = ours.get(name)!.data;
      for (let i = 0; i < mine.length; i++) {
        assert.ok(Math.abs(mine[i]! - ref.data[i]!) <= 1e-5, `${name}[${i}]: ${mine[i]} vs tfjs ${ref.data[i]}`);
        moved = Math.max(moved, Math.abs(mine[i]! - initial.get(name)!.data[i]!));
      }
    }
    assert.ok(moved > 3e-3, `the weights barely moved (${moved}): the comparison would be empty`);
    // Optimizer state is in the shared checkpoint format: the tfjs engine reads ort's.
    const state = ort.serializeOptimizer();
    assert.equal(JSON.parse(state.json).step, 4);
    tfjs.restoreOptimizer(state.bin, state.json, 'test');
  } finally {
    await ort.dispose();
    await tfjs.dispose();
  }
});

test('a training step on 2 threads gives bit-identical loss and gradients every time (repeated token ids included)', async () => {
  // The default study's shape. With the tied wte's row terms added by ScatterND (reduction "add"),
  // onnxruntime's 2-thread kernel summed repeated ids in a varying order and grad.wte differed
  // between runs of the same step; the rows are now added in JS in a fixed order.
  const big: ModelConfig = { vocab: 1024, context: 128, dModel: 64, layers: 2, heads: 2 };
  const rng = mulberry32(11);
  const weights: NamedWeights = new Map();
  for (const [name, w] of weightShapes(big)) {
    const size = w.reduce((a, b) => a * b, 1);
    weights.set(name, { shape: w, data: Float32Array.from({ length: size }, () => (rng() - 0.5) * 0.2) });
  }
  const rows = 32 * 127;
  // Few distinct ids, so every id repeats many times in a batch.
  const mask = Float32Array.from({ length: rows }, () => (rng() < 0.6 ? 1 : 0));
  const batch: BatchArrays = {
    batch: 32,
    length: 127,
    inputs: Int32Array.from({ length: rows }, () => Math.floor(rng() * 50)),
    targets: Int32Array.from({ length: rows }, () => Math.floor(rng() * 50)),
    mask,
    tokens: rows,
    scored: mask.reduce((a, b) => a + b, 0),
  };
  const session = await OrtTrainSession.create(big, { threads: 2 });
  const first = await session.run(weights, batch);
  const copy = new Map([...first.grads].map(([k, v]) => [k, Float32Array.from(v)]));
  for (let i = 0; i < 5; i++) {
    const again = await session.run(weights, batch);
    assert.equal(again.loss, first.loss);
    for (const [name, g] of again.grads) assert.deepEqual(g, copy.get(name), `run ${i + 2}: grad ${name} differs`);
  }
  await session.release();
});
