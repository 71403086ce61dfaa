// Perplexity arithmetic by hand, batching plans, and padding that changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelConfig } from '../../src/model/config.ts';
import { exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { negLogProb, nllFromLogits, planBatches, scoreBatch, summarizeScores, type ScoringExample } from '../../src/eval/scoring.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { randomWeights } from './helpers.ts';

test('negLogProb is -ln softmax on a hand example', () => {
  // logits [0, ln 2, ln 5] -> probabilities [1/8, 2/8, 5/8]
  const logits = new Float32Array([9, 0, Math.log(2), Math.log(5)]);
  assert.ok(Math.abs(negLogProb(logits, 1, 3, 0) - Math.log(8)) < 1e-6);
  assert.ok(Math.abs(negLogProb(logits, 1, 3, 1) - Math.log(4)) < 1e-6);
  assert.ok(Math.abs(negLogProb(logits, 1, 3, 2) - Math.log(8 / 5)) < 1e-6);
  // Large logits do not overflow (log-sum-exp is shifted by the max).
  const big = new Float32Array([1000, 1000 + Math.log(3)]);
  assert.ok(Math.abs(negLogProb(big, 0, 2, 0) - Math.log(4)) < 1e-4);
});

test('per-example NLL counts only loss-masked targets; per-checkpoint perplexity and bits per byte', () => {
  // Vocab 2, one example of 3 tokens [0, 1, 1]; only position 2 is a target (prompt = positions 0..1).
  // Row t predicts ids[t+1]. Row 1 logits [0, ln 3] -> p(1) = 3/4.
  const logits = new Float32Array([5, -5, 0, Math.log(3), 7, 7]);
  const ex: ScoringExample = { id: 'a', ids: [0, 1, 1], lossMask: [0, 0, 1], bytes: 2 };
  const [score] = nllFromLogits(logits, [ex], 3, 2);
  assert.equal(score!.tokens, 1);
  assert.ok(Math.abs(score!.nll - Math.log(4 / 3)) < 1e-6);
  // Two examples: NLL 2 over 4 tokens and 6 over 4 tokens, 10 + 6 bytes.
  const s = summarizeScores([
    { nll: 2, tokens: 4, bytes: 10 },
    { nll: 6, tokens: 4, bytes: 6 },
  ]);
  assert.equal(s.tokens, 8);
  assert.ok(Math.abs(s.perplexity - Math.exp(1)) < 1e-12);
  assert.ok(Math.abs(s.bitsPerByte - 8 / Math.LN2 / 16) < 1e-12);
});

test('planBatches: longest first, at most batchTokens padded tokens, every example once', () => {
  const ex = [3, 9, 4, 9, 1, 6, 2].map((n, i) => ({ id: `e${i}`, ids: new Array<number>(n).fill(0) }));
  const batches = planBatches(ex, 18);
  assert.deepEqual(batches.map((b) => b.map((e) => e.id)), [['e1', 'e3'], ['e5', 'e2', 'e0'], ['e6', 'e4']]);
  for (const b of batches) assert.ok(b.length * b[0]!.ids.length <= 18);
  // An example longer than the budget still gets its own batch.
  assert.deepEqual(planBatches([{ ids: new Array<number>(30).fill(0) }], 18).length, 1);
});

test('padding changes nothing: an example alone and batched with longer ones give the same NLL', async () => {
  const model: ModelConfig = { vocab: 61, context: 40, dModel: 32, layers: 2, heads: 4 };
  const session = await DecoderSession.create(exportOnnxBytes(model, randomWeights(model, 3, 0.3)), model, { threads: 1 });
  const rng = mulberry32(21);
  const make = (id: string, n: number, promptLen: number): ScoringExample => ({
    id,
    ids: Array.from({ length: n }, () => Math.floor(rng() * model.vocab)),
    lossMask: Array.from({ length: n }, (_, t) => (t >= promptLen ? 1 : 0)),
    bytes: n,
  });
  const short = make('short', 9, 4);
  const others = [make('long', 37, 10), make('mid', 20, 3)];
  const [alone] = await scoreBatch(session, [short]);
  const batched = await scoreBatch(session, [...others, short]);
  const inBatch = batched.find((s) => s.id === 'short')!;
  assert.equal(alone!.tokens, 5);
  assert.ok(alone!.nll > 1, 'random weights give a non-trivial NLL');
  assert.ok(Math.abs(alone!.nll - inBatch.nll) < 1e-5, `alone ${alone!.nll} vs batched ${inBatch.nll}`);
  // The longer examples are unaffected by their order in the batch too.
  const reordered = await scoreBatch(session, [short, others[1]!, others[0]!]);
  for (const id of ['long', 'mid']) {
    const a = batched.find((s) => s.id === id)!.nll;
    const b = reordered.find((s) => s.id === id)!.nll;
    assert.ok(Math.abs(a - b) < 1e-5, `${id}: ${a} vs ${b}`);
  }
  await session.release();
});

test("the graph's token_logprobs output gives the same NLL as a float64 softmax in JS", async () => {
  const model: ModelConfig = { vocab: 300, context: 40, dModel: 32, layers: 2, heads: 4 };
  const session = await DecoderSession.create(exportOnnxBytes(model, randomWeights(model, 4, 0.5)), model, { threads: 1 });
  const rng = mulberry32(2);
  const ids = Array.from({ length: 30 }, () => Math.floor(rng() * model.vocab));
  const ex: ScoringExample = { id: 'x', ids, lossMask: ids.map((_, t) => (t > 3 ? 1 : 0)), bytes: 30 };
  const out = await session.run([ids], [ids.map(() => 1)], [ids.map((_, t) => t)]);
  const [fast] = await scoreBatch(session, [ex]);
  const [slow] = nllFromLogits(out.logits, [ex], 30, model.vocab);
  assert.equal(fast!.tokens, 26);
  assert.equal(slow!.tokens, 26);
  assert.ok(slow!.nll > 10);
  assert.ok(Math.abs(fast!.nll - slow!.nll) / slow!.nll < 1e-6, `graph ${fast!.nll} vs js ${slow!.nll}`);
  await session.release();
});
