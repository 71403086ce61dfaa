// The exported ONNX graph computes the same function as the plain-TypeScript reference forward,
// for full sequences with right padding and for incremental decoding with the KV cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../../src/model/config.ts';
import { exportOnnx, exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { decodeModel } from '../../src/model/onnx-proto.ts';
import { referenceForward } from '../../src/model/reference-forward.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { negLogProb } from '../../src/eval/scoring.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { randomWeights, tempDir } from './helpers.ts';

const model: ModelConfig = { vocab: 97, context: 32, dModel: 24, layers: 3, heads: 3 };
const weights = randomWeights(model, 11, 0.3);

function randomIds(rng: () => number, n: number): number[] {
  return Array.from({ length: n }, () => Math.floor(rng() * model.vocab));
}

/** A right-padded batch of random rows: ids, attention mask, positions, and which logits are real. */
function paddedBatch(rng: () => number, lengths: number[], width: number) {
  const ids = lengths.map((n) => [...randomIds(rng, n), ...new Array<number>(width - n).fill(0)]);
  const mask = lengths.map((n) => Array.from({ length: width }, (_, t) => (t < n ? 1 : 0)));
  const pos = lengths.map(() => Array.from({ length: width }, (_, t) => t));
  // Padded positions' logits are never used; comparisons look at the real ones.
  const real = (i: number): boolean => {
    const row = Math.floor(i / model.vocab);
    return mask[Math.floor(row / width)]![row % width] === 1;
  };
  return { ids, mask, pos, real };
}

/** max |a - b| over the compared entries, relative to the largest |b| (the logits' scale). */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>, include: (i: number) => boolean = () => true): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    if (!include(i)) continue;
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  assert.ok(scale > 0.5, `logits scale ${scale} too small for a meaningful comparison`);
  return diff / scale;
}

test('the exported file is a valid ModelProto with the decoder inputs and outputs', async () => {
  const dir = await tempDir('onnx');
  const file = path.join(dir, 'm.onnx');
  await exportOnnx(model, weights, file);
  const bytes = await fs.readFile(file);
  assert.ok(Buffer.from(exportOnnxBytes(model, weights)).equals(bytes), "file bytes equal the in-memory export");
  const decoded = decodeModel(bytes);
  assert.equal(decoded.opsetImport[0]!.version, 20);
  assert.deepEqual(decoded.graph.input.map((i) => i.name).slice(0, 4), ['input_ids', 'attention_mask', 'position_ids', 'past_key_values.0.key']);
  assert.deepEqual(decoded.graph.output.map((o) => o.name).slice(0, 4), ['logits', 'token_logprobs', 'present.0.key', 'present.0.value']);
  const wte = decoded.graph.initializer.find((t) => t.name === 'wte')!;
  assert.deepEqual(wte.dims, [model.vocab, model.dModel]);
  await fs.rm(dir, { recursive: true, force: true });
});

test('ONNX logits match the reference forward on a right-padded batch (no cache)', async () => {
  const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: 1 });
  const width = 12;
  const { ids, mask, pos, real } = paddedBatch(mulberry32(5), [12, 7, 1], width);
  const onnx = await session.run(ids, mask, pos);
  const ref = referenceForward(model, weights, { inputIds: ids, attentionMask: mask, positionIds: pos });
  const err = relativeError(onnx.logits, ref.logits, real);
  assert.ok(err < 1e-4, `relative error ${err}`);
  // The cache the graph returns is the reference's keys/values.
  assert.equal(onnx.present.length, width);
  const keyErr = relativeError(onnx.present.tensors[2]!.data as Float32Array, ref.present.keys[1]!);
  assert.ok(keyErr < 1e-4, `present key relative error ${keyErr}`);
  await session.release();
});

test('ONNX with a KV cache: prefix then one token at a time equals the full-sequence reference', async () => {
  const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: 1 });
  const rng = mulberry32(9);
  const full = randomIds(rng, 10);
  const prefix = 6;
  const ref = referenceForward(model, weights, { inputIds: [full], attentionMask: [full.map(() => 1)], positionIds: [full.map((_, t) => t)] });
  let out = await session.run([full.slice(0, prefix)], [new Array(prefix).fill(1)], [Array.from({ length: prefix }, (_, t) => t)]);
  const V = model.vocab;
  let err = relativeError(out.logits, ref.logits.subarray(0, prefix * V));
  assert.ok(err < 1e-4, `prefix relative error ${err}`);
  for (let t = prefix; t < full.length; t++) {
    out = await session.run([[full[t]!]], [new Array(t + 1).fill(1)], [[t]], out.present);
    assert.equal(out.logits.length, V);
    err = relativeError(out.logits, ref.logits.subarray(t * V, (t + 1) * V));
    assert.ok(err < 1e-4, `step ${t} relative error ${err}`);
  }
  // Cached decoding also agrees with the reference's own cached path.
  const refPast = referenceForward(model, weights, { inputIds: [full.slice(0, 8)], attentionMask: [new Array(8).fill(1)], positionIds: [[0, 1, 2, 3, 4, 5, 6, 7]] });
  const refStep = referenceForward(model, weights, { inputIds: [[full[8]!, full[9]!]], attentionMask: [new Array(10).fill(1)], positionIds: [[8, 9]], past: refPast.present });
  err = relativeError(refStep.logits, ref.logits.subarray(8 * V, 10 * V));
  assert.ok(err < 1e-5, `reference cached path relative error ${err}`);
  await session.release();
});

test('ONNX logits match the tfjs training model (src/model/gpt.ts), with and without the KV cache', async () => {
  const tf = await import('@tensorflow/tfjs');
  const { initBackend } = await import('../../src/train/backend.ts');
  const gpt = await import('../../src/model/gpt.ts');
  await initBackend('wasm');
  const rng = mulberry32(21);
  const ids = [randomIds(rng, 10), randomIds(rng, 10)];
  const params = gpt.toParams(weights);
  const tfLogits = tf.tidy(() => gpt.logits(params, model, tf.tensor2d(ids, [2, 10], 'int32')).dataSync() as Float32Array);
  gpt.disposeParams(params);
  const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: 1 });
  const full = await session.run(ids, ids.map((r) => r.map(() => 1)), ids.map((r) => r.map((_, t) => t)));
  let err = relativeError(full.logits, tfLogits);
  assert.ok(err < 1e-4, `full-sequence relative error ${err}`);
  // Cached: the first 7 tokens, then 3 more one at a time.
  const V = model.vocab;
  let out = await session.run([ids[0]!.slice(0, 7)], [new Array(7).fill(1)], [[0, 1, 2, 3, 4, 5, 6]]);
  for (let t = 7; t < 10; t++) {
    out = await session.run([[ids[0]![t]!]], [new Array(t + 1).fill(1)], [[t]], out.present);
    err = relativeError(out.logits, tfLogits.subarray(t * V, (t + 1) * V));
    assert.ok(err < 1e-4, `cached step ${t} relative error ${err}`);
  }
  await session.release();
});

test('masking holds when attention scores are in the hundreds (the pre-softmax score floor)', async () => {
  // Query and key columns scaled up: scores reach hundreds, so masked keys' scores can beat the
  // allowed ones by more than any fixed masking constant short of -1e9; they must still get no weight.
  const sharp: typeof weights = new Map([...weights].map(([name, w]) => [name, { shape: w.shape, data: w.data.slice() }]));
  const d = model.dModel;
  for (let i = 0; i < model.layers; i++) {
    const w = sharp.get(`h.${i}.attn.wqkv`)!.data;
    for (let r = 0; r < d; r++) for (let c = 0; c < 2 * d; c++) w[r * 3 * d + c]! *= 8;
  }
  const session = await DecoderSession.create(exportOnnxBytes(model, sharp), model, { threads: 1 });
  const width = 9;
  const { ids, mask, pos, real } = paddedBatch(mulberry32(31), [9, 5], width);
  const onnx = await session.run(ids, mask, pos);
  const ref = referenceForward(model, sharp, { inputIds: ids, attentionMask: mask, positionIds: pos });
  const err = relativeError(onnx.logits, ref.logits, real);
  assert.ok(err < 1e-4, `relative error ${err}`);
  // The graph's next-token log-probabilities equal ones computed from its own logits in float64.
  const tokenLogprobs = await session.tokenLogprobs(ids, mask, pos);
  for (let b = 0; b < ids.length; b++) {
    for (let t = 0; t + 1 < width; t++) {
      if (mask[b]![t + 1] !== 1) continue;
      const expected = -negLogProb(onnx.logits, (b * width + t) * model.vocab, model.vocab, ids[b]![t + 1]!);
      const got = tokenLogprobs[b * (width - 1) + t]!;
      assert.ok(Math.abs(got - expected) < 1e-4 * Math.max(1, Math.abs(expected)), `row ${b} position ${t}: ${got} vs ${expected}`);
    }
  }
  // One decoding step over a past with masked slots (keys 2 and 3 hidden).
  const past = await session.run([ids[0]!.slice(0, 6)], [[1, 1, 0, 0, 1, 1]], [[0, 1, 2, 3, 4, 5]]);
  const step = await session.run([[ids[0]![6]!]], [[1, 1, 0, 0, 1, 1, 1]], [[6]], past.present);
  const refPast = referenceForward(model, sharp, { inputIds: [ids[0]!.slice(0, 6)], attentionMask: [[1, 1, 0, 0, 1, 1]], positionIds: [[0, 1, 2, 3, 4, 5]] });
  const refStep = referenceForward(model, sharp, { inputIds: [[ids[0]![6]!]], attentionMask: [[1, 1, 0, 0, 1, 1, 1]], positionIds: [[6]], past: refPast.present });
  const stepErr = relativeError(step.logits, refStep.logits);
  assert.ok(stepErr < 1e-4, `masked-past step relative error ${stepErr}`);
  await session.release();
});
