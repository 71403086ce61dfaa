// The llama ONNX graph (src/model/onnx-llama.ts) computes the same function as the plain-JS
// llama reference forward, on small random configs with grouped-query attention, tied and
// untied output heads and headDim != dModel / heads: right-padded batches, KV-cached decoding,
// masked past slots, token_logprobs; and config validation, parameter counts, weight shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countParams, validateModelConfig, type ModelConfig } from '../../src/model/config.ts';
import { buildOnnxModel, exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { checkWeights, weightShapes } from '../../src/model/weights.ts';
import { referenceForward } from '../../src/model/reference-forward.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { negLogProb } from '../../src/eval/scoring.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { LLAMA_CONFIGS, randomLlamaWeights } from './llama-fixtures.ts';

/** max |a - b| over the compared entries, relative to the largest |b|. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>, include: (i: number) => boolean = () => true): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    if (!include(i)) continue;
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  assert.ok(scale > 0.5, `scale ${scale} too small for a meaningful comparison`);
  return diff / scale;
}

function randomIds(rng: () => number, vocab: number, n: number): number[] {
  return Array.from({ length: n }, () => Math.floor(rng() * vocab));
}

for (const [label, model] of Object.entries(LLAMA_CONFIGS)) {
  const weights = randomLlamaWeights(model, 7 + label.length, 0.3);

  test(`llama ${label}: graph logits, cache and token_logprobs match the reference on a right-padded batch`, async () => {
    const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: 1 });
    const rng = mulberry32(3);
    const width = 11;
    const lengths = [11, 6, 1];
    const ids = lengths.map((n) => [...randomIds(rng, model.vocab, n), ...new Array<number>(width - n).fill(0)]);
    const mask = lengths.map((n) => Array.from({ length: width }, (_, t) => (t < n ? 1 : 0)));
    const pos = lengths.map(() => Array.from({ length: width }, (_, t) => t));
    const real = (i: number): boolean => {
      const row = Math.floor(i / model.vocab);
      return mask[Math.floor(row / width)]![row % width] === 1;
    };
    const out = await session.run(ids, mask, pos);
    const ref = referenceForward(model, weights, { inputIds: ids, attentionMask: mask, positionIds: pos });
    const err = relativeError(out.logits, ref.logits, real);
    assert.ok(err < 1e-4, `relative error ${err}`);
    // Present keys (after rotation) and values: [batch, kvHeads, total, headDim], as the reference's.
    const kvHeads = model.kvHeads!;
    const headDim = model.headDim ?? model.dModel / model.heads;
    assert.deepEqual(out.present.tensors[0]!.dims, [3, kvHeads, width, headDim]);
    for (const [n, refTensor] of [[2, ref.present.keys[1]!], [3, ref.present.values[1]!]] as const) {
      const e = relativeError(out.present.tensors[n]!.data as Float32Array, refTensor);
      assert.ok(e < 1e-4, `present tensor ${n} relative error ${e}`);
    }
    const lp = await session.tokenLogprobs(ids, mask, pos);
    for (let b = 0; b < ids.length; b++) {
      for (let t = 0; t + 1 < width; t++) {
        if (mask[b]![t + 1] !== 1) continue;
        const expected = -negLogProb(ref.logits, (b * width + t) * model.vocab, model.vocab, ids[b]![t + 1]!);
        const got = lp[b * (width - 1) + t]!;
        assert.ok(Math.abs(got - expected) < 1e-4 * Math.max(1, Math.abs(expected)), `row ${b} position ${t}: ${got} vs ${expected}`);
      }
    }
    await session.release();
  });

  test(`llama ${label}: KV-cached decoding equals full-sequence logits; a masked past slot stays masked`, async () => {
    const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: 1 });
    const rng = mulberry32(17);
    const full = randomIds(rng, model.vocab, 12);
    const V = model.vocab;
    const whole = await session.run([full], [full.map(() => 1)], [full.map((_, t) => t)]);
    const ref = referenceForward(model, weights, { inputIds: [full], attentionMask: [full.map(() => 1)], positionIds: [full.map((_, t) => t)] });
    assert.ok(relativeError(whole.logits, ref.logits) < 1e-4);
    const prefix = 5;
    let out = await session.run([full.slice(0, prefix)], [new Array(prefix).fill(1)], [Array.from({ length: prefix }, (_, t) => t)]);
    for (let t = prefix; t < full.length; t++) {
      out = await session.run([[full[t]!]], [new Array(t + 1).fill(1)], [[t]], out.present);
      assert.equal(out.logits.length, V);
      const err = relativeError(out.logits, whole.logits.subarray(t * V, (t + 1) * V));
      assert.ok(err < 1e-5, `step ${t}: cached vs full-sequence graph relative error ${err}`);
    }
    // Two tokens at once over a past whose slots 1 and 2 are masked, against the reference's cached path.
    const maskPast = [1, 0, 0, 1, 1, 1];
    const past = await session.run([full.slice(0, 6)], [maskPast], [[0, 1, 2, 3, 4, 5]]);
    const step = await session.run([full.slice(6, 8)], [[...maskPast, 1, 1]], [[6, 7]], past.present);
    const refPast = referenceForward(model, weights, { inputIds: [full.slice(0, 6)], attentionMask: [maskPast], positionIds: [[0, 1, 2, 3, 4, 5]] });
    const refStep = referenceForward(model, weights, { inputIds: [full.slice(6, 8)], attentionMask: [[...maskPast, 1, 1]], positionIds: [[6, 7]], past: refPast.present });
    const err = relativeError(step.logits, refStep.logits);
    assert.ok(err < 1e-4, `masked-past step relative error ${err}`);
    // And masking mattered: unmasking the slots changes the logits.
    const unmasked = referenceForward(model, weights, { inputIds: [full.slice(0, 8)], attentionMask: [new Array(8).fill(1)], positionIds: [[0, 1, 2, 3, 4, 5, 6, 7]] });
    assert.ok(relativeError(unmasked.logits.subarray(6 * V, 8 * V), refStep.logits) > 1e-3, 'masked past made no difference');
    await session.release();
  });
}

test('llama: masking holds when attention scores are in the hundreds (score floor)', async () => {
  const model = LLAMA_CONFIGS.gqa!;
  const weights = randomLlamaWeights(model, 5, 0.3);
  for (let i = 0; i < model.layers; i++) for (const n of ['wq', 'wk']) weights.get(`h.${i}.attn.${n}`)!.data.forEach((v, j, a) => (a[j] = v * 6));
  const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: 1 });
  const ids = [randomIds(mulberry32(2), model.vocab, 9), [...randomIds(mulberry32(4), model.vocab, 5), 0, 0, 0, 0]];
  const mask = [new Array(9).fill(1), [1, 1, 1, 1, 1, 0, 0, 0, 0]];
  const pos = ids.map((r) => r.map((_, t) => t));
  const out = await session.run(ids, mask, pos);
  const ref = referenceForward(model, weights, { inputIds: ids, attentionMask: mask, positionIds: pos });
  const real = (i: number) => mask[Math.floor(i / model.vocab / 9)]![Math.floor(i / model.vocab) % 9] === 1;
  const err = relativeError(out.logits, ref.logits, real);
  assert.ok(err < 1e-4, `relative error ${err}`);
  await session.release();
});

test('llama graph: standard ONNX ops only, cache inputs at kvHeads, RoPE tables as initializers', () => {
  const model = LLAMA_CONFIGS.wide_heads!;
  const msg = buildOnnxModel(model, randomLlamaWeights(model, 1));
  assert.deepEqual(msg.opsetImport, [{ domain: '', version: 20 }]);
  assert.ok(msg.graph.node.every((n) => !n.domain), 'a node uses a non-standard domain');
  const past = msg.graph.input.find((i) => i.name === 'past_key_values.0.key')!;
  assert.deepEqual(past.type.tensorType.shape.dim, [{ dimParam: 'batch' }, { dimValue: 1 }, { dimParam: 'past' }, { dimValue: 8 }]);
  assert.deepEqual(msg.graph.initializer.find((t) => t.name === 'rope_cos')!.dims, [40, 8]);
  assert.deepEqual(msg.graph.output.map((o) => o.name).slice(0, 4), ['logits', 'token_logprobs', 'present.0.key', 'present.0.value']);
  // Every initializer feeds a node (onnxruntime warns about unused ones), with and without grouped heads.
  for (const config of [model, LLAMA_CONFIGS.mha_tied!, LLAMA_CONFIGS.gqa!]) {
    const graph = buildOnnxModel(config, randomLlamaWeights(config, 1)).graph;
    const used = new Set(graph.node.flatMap((n) => n.input));
    assert.deepEqual(graph.initializer.map((t) => t.name).filter((n) => !used.has(n)), [], JSON.stringify(config));
  }
});

test('llama config validation names the field; countParams counts every weight', () => {
  const base = LLAMA_CONFIGS.gqa!;
  const bad: Array<[Partial<ModelConfig>, RegExp]> = [
    [{ kvHeads: 3 }, /model\.kvHeads \(3\) must divide model\.heads \(4\)/],
    [{ kvHeads: undefined }, /model\.kvHeads must be a positive integer/],
    [{ ffnHidden: 0 }, /model\.ffnHidden must be a positive integer/],
    [{ headDim: 7 }, /model\.headDim \(7\) must be even/],
    [{ headDim: 2.5 }, /model\.headDim must be a positive integer/],
    [{ dModel: 30, headDim: undefined }, /model\.heads \(4\) must divide model\.dModel \(30\) when model\.headDim is not given/],
    [{ ropeTheta: -1 }, /model\.ropeTheta must be a positive number/],
    [{ normEps: 0 }, /model\.normEps must be a positive number/],
    [{ arch: 'mamba' as 'llama' }, /model\.arch must be "gpt2" or "llama"/],
  ];
  for (const [patch, pattern] of bad) assert.throws(() => validateModelConfig({ ...base, ...patch }), pattern, JSON.stringify(patch));
  assert.throws(() => validateModelConfig({ vocab: 10, context: 8, dModel: 8, layers: 1, heads: 2, kvHeads: 1 }), /model\.kvHeads applies only to arch "llama"/);
  validateModelConfig({ ...base, dModel: 30, headDim: 8 }); // headDim given: dModel need not divide
  for (const model of Object.values(LLAMA_CONFIGS)) {
    const total = weightShapes(model).reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
    assert.equal(countParams(model), total);
  }
  // The gpt2 count is unchanged: 2 layers of d=32, vocab 100, context 16.
  assert.equal(countParams({ vocab: 100, context: 16, dModel: 32, layers: 2, heads: 4 }), 100 * 32 + 16 * 32 + 2 * (12 * 32 * 32 + 13 * 32) + 2 * 32);
});

test('llama weights: checkWeights names a missing, extra or wrong-shaped tensor', () => {
  const model = LLAMA_CONFIGS.mha_tied!;
  const weights = randomLlamaWeights(model, 2);
  checkWeights(weights, model);
  assert.ok(!weights.has('output'), 'tied model has no output tensor');
  const missing = new Map(weights);
  missing.delete('h.1.mlp.up');
  assert.throws(() => checkWeights(missing, model), /missing tensor h\.1\.mlp\.up/);
  const extra = new Map(weights).set('output', { shape: [model.vocab, model.dModel], data: new Float32Array(model.vocab * model.dModel) });
  assert.throws(() => checkWeights(extra, model), /unexpected tensors output/);
  const wrong = new Map(weights).set('h.0.attn.wk', { shape: [24, 16], data: new Float32Array(24 * 16) });
  assert.throws(() => checkWeights(wrong, model), /h\.0\.attn\.wk has shape \[24,16\] but the config needs \[24,24\]/);
});
