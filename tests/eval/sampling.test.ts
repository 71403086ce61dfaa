// LIMA decoding: repetition penalty, nucleus set, seeded reproducibility, cache == no cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelConfig } from '../../src/model/config.ts';
import { exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { applyRepetitionPenalty, drawFrom, nucleus, sampleNext } from '../../src/eval/sampling.ts';
import { fitPrompt, generateIds } from '../../src/eval/generate.ts';
import { defaultGenerationConfig, validateEvalConfig, defaultEvalConfig } from '../../src/eval/config.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { randomWeights } from './helpers.ts';

test('repetition penalty divides positive and multiplies negative logits of generated tokens, once each', () => {
  const logits = new Float32Array([2.4, -1, 0.5, 3]);
  applyRepetitionPenalty(logits, [0, 1, 0], 1.2);
  assert.ok(Math.abs(logits[0]! - 2) < 1e-6);
  assert.ok(Math.abs(logits[1]! - -1.2) < 1e-6);
  assert.equal(logits[2], 0.5);
  assert.equal(logits[3], 3);
});

test('top-p keeps the smallest most-probable set reaching p (hand example)', () => {
  // Probabilities 0.5, 0.25, 0.15, 0.1 (temperature 1).
  const logits = new Float32Array([0.15, 0.5, 0.1, 0.25].map(Math.log));
  const c = nucleus(logits, 1, 0.9);
  assert.deepEqual(c.ids, [0, 1, 3]); // 0.5 + 0.25 = 0.75 < 0.9; + 0.15 = 0.9 reaches it (ids in id order)
  assert.ok(Math.abs(c.probs[1]! - 0.5 / 0.9) < 1e-6); // float32 logits
  assert.ok(Math.abs(c.probs[0]! - 0.15 / 0.9) < 1e-6);
  assert.deepEqual(nucleus(logits, 1, 0.7).ids, [1, 3]);
  // Ties at the boundary: lower ids first.
  assert.deepEqual(nucleus(new Float32Array([0, 0, 0, 0]), 1, 0.5).ids, [0, 1]);
  assert.deepEqual(nucleus(logits, 1, 0.5).ids, [1]);
  assert.deepEqual(nucleus(logits, 1, 1).ids.length, 4);
  // Temperature sharpens: at 0.5 the probabilities are squared and renormalised (0.25/0.3525 > 0.7).
  assert.deepEqual(nucleus(logits, 0.5, 0.7).ids, [1]);
  assert.equal(drawFrom(c, 0), 0);
  assert.equal(drawFrom(c, 0.5), 1);
  assert.equal(drawFrom(c, 0.99), 3);
});

/** Nucleus by sorting every token (the definition, slow): most probable first, ties by lower id. */
function nucleusBySortingAll(logits: Float32Array, temperature: number, topP: number): number[] {
  const max = Math.max(...logits);
  const weights = Array.from(logits, (l) => Math.exp((l - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  const order = weights.map((w, id) => ({ w, id })).sort((a, b) => b.w - a.w || a.id - b.id);
  let cumulative = 0;
  const kept: number[] = [];
  for (const { w, id } of order) {
    cumulative += w / total;
    kept.push(id);
    if (cumulative >= topP - 1e-12) break;
  }
  return kept.sort((a, b) => a - b);
}

test('top-p equals sorting every token, on flat, peaked and tied rows of a 2048-token vocabulary', () => {
  const rng = mulberry32(11);
  let compared = 0;
  for (const scale of [0.01, 1, 4, 12]) {
    for (const [temperature, topP] of [[0.7, 0.9], [1, 0.5], [0.7, 1], [1.3, 0.99], [0.7, 0.001]] as const) {
      for (let row = 0; row < 4; row++) {
        // Quantised logits give many exact ties, including at the nucleus boundary.
        const logits = Float32Array.from({ length: 2048 }, () => Math.round(rng() * scale * 8) / 8);
        const got = nucleus(logits, temperature, topP);
        assert.deepEqual(got.ids, nucleusBySortingAll(logits, temperature, topP), `scale ${scale}, T ${temperature}, p ${topP}, row ${row}`);
        assert.ok(Math.abs(got.probs.reduce((a, b) => a + b, 0) - 1) < 1e-9);
        compared++;
      }
    }
  }
  assert.equal(compared, 80);
});

test('sampleNext: same seed, same draws; the penalty can change the choice', () => {
  const rng = mulberry32(4);
  const row = Float32Array.from({ length: 50 }, () => rng() * 4);
  const draw = (seed: number) => {
    const r = mulberry32(seed);
    return Array.from({ length: 20 }, () => sampleNext(row, [], defaultGenerationConfig, r));
  };
  assert.deepEqual(draw(1), draw(1));
  assert.notDeepEqual(draw(1), draw(2));
  // A token far ahead is always picked at p tiny, unless a huge penalty was applied to it.
  const peaked = new Float32Array([10, 1, 1]);
  const cfg = { ...defaultGenerationConfig, topP: 0.01 };
  assert.equal(sampleNext(peaked, [], cfg, mulberry32(1)), 0);
  assert.notEqual(sampleNext(peaked, [0], { ...cfg, repetitionPenalty: 100 }, mulberry32(1)), 0);
});

test('generation is reproducible from its seed, and the KV cache gives the same tokens as recomputing', async () => {
  const model: ModelConfig = { vocab: 40, context: 48, dModel: 32, layers: 2, heads: 4 };
  const session = await DecoderSession.create(exportOnnxBytes(model, randomWeights(model, 8, 0.4)), model, { threads: 1 });
  const cfg = { ...defaultGenerationConfig, maxNewTokens: 20 };
  const prompt = [3, 4, 5, 6, 7];
  const eot = 1;
  const a = await generateIds(session, prompt, cfg, { seed: 42, eot });
  const b = await generateIds(session, prompt, cfg, { seed: 42, eot });
  const noCache = await generateIds(session, prompt, cfg, { seed: 42, eot, useCache: false });
  const other = await generateIds(session, prompt, cfg, { seed: 43, eot });
  assert.deepEqual(a, b);
  assert.deepEqual(noCache, a);
  assert.ok(a.newTokens >= 1 && a.newTokens <= 20);
  assert.equal(a.endedWithEot, a.newTokens < 20 || a.ids.length === 19);
  assert.notDeepEqual(other.ids, a.ids);
  await session.release();
});

test('fitPrompt keeps the end of a long prompt and leaves room for the response', () => {
  const prompt = Array.from({ length: 100 }, (_, i) => i);
  const { prompt: kept, maxNew } = fitPrompt(prompt, 20, 64);
  assert.equal(kept.length, 44);
  assert.equal(kept[kept.length - 1], 99);
  assert.equal(maxNew, 20);
  assert.deepEqual(fitPrompt([1, 2], 10, 64), { prompt: [1, 2], maxNew: 10 });
});

test('validateEvalConfig accepts the defaults and names the bad key', () => {
  assert.deepEqual(validateEvalConfig(defaultEvalConfig, 'cfg'), defaultEvalConfig);
  assert.throws(() => validateEvalConfig({ ...defaultEvalConfig, workers: 0 }, 'x.json: eval'), /x\.json: eval\.workers/);
  assert.throws(() => validateEvalConfig({ ...defaultEvalConfig, generation: { ...defaultGenerationConfig, topP: 1.5 } }, 'e'), /e\.generation\.topP/);
  assert.throws(() => validateEvalConfig({ ...defaultEvalConfig, bogus: 1 }, 'e'), /e\.bogus: unknown key/);
});

test('with the KV cache every step after the prompt feeds exactly one new token', async () => {
  const model: ModelConfig = { vocab: 40, context: 64, dModel: 16, layers: 1, heads: 2 };
  const session = await DecoderSession.create(exportOnnxBytes(model, randomWeights(model, 5, 0.4)), model, { threads: 1 });
  const calls: Array<{ width: number; past: number }> = [];
  const run = session.run.bind(session);
  session.run = async (ids, mask, pos, past) => {
    calls.push({ width: ids[0]!.length, past: past?.length ?? 0 });
    return run(ids, mask, pos, past);
  };
  const out = await generateIds(session, [2, 3, 4, 5], { ...defaultGenerationConfig, maxNewTokens: 12 }, { seed: 3, eot: -1 });
  assert.equal(out.newTokens, 12);
  assert.equal(calls.length, 12); // the prompt pass samples token 1; 11 single-token steps follow
  assert.deepEqual(calls[0], { width: 4, past: 0 });
  calls.slice(1).forEach((c, i) => assert.deepEqual(c, { width: 1, past: 4 + i }));
  await session.release();
});

test('vocabLimit: a model whose vocabulary is padded beyond its tokenizer never samples an id the tokenizer lacks', async () => {
  const model: ModelConfig = { vocab: 40, context: 64, dModel: 32, layers: 2, heads: 4 };
  const weights = randomWeights(model, 8, 0.4);
  // Make the padded ids 30..39 the most likely: without the limit they are drawn.
  const wte = weights.get('wte')!.data;
  for (let id = 30; id < 40; id++) for (let j = 0; j < model.dModel; j++) wte[id * model.dModel + j] *= 6;
  const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: 1 });
  const cfg = { ...defaultGenerationConfig, maxNewTokens: 40 };
  const unlimited = await generateIds(session, [3, 4, 5], cfg, { seed: 5, eot: -1 });
  assert.ok(unlimited.ids.some((id) => id >= 30), 'the fixture must draw padded ids without the limit');
  const limited = await generateIds(session, [3, 4, 5], cfg, { seed: 5, eot: -1, vocabLimit: 30, logprobs: true });
  assert.equal(limited.newTokens, 40);
  assert.ok(limited.ids.every((id) => id < 30), `ids ${limited.ids.join(',')}`);
  assert.ok(limited.logprobs!.every((lp) => Number.isFinite(lp) && lp <= 0));
  await assert.rejects(generateIds(session, [3], cfg, { seed: 5, eot: -1, vocabLimit: 0 }), /vocabLimit must be a positive integer/);
  await session.release();
});
