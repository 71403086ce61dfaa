// analyze(): figures on a hand-computed toy input, the exact metrics.json shape, the sign of the
// correlation sentence both ways, the window fallback, determinism and input errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, correlationSentence, type AnalysisInput } from '../../src/analysis/index.ts';
import { syntheticInput } from './fixtures.ts';

const close = (actual: number | null, expected: number, eps = 1e-9) =>
  assert.ok(actual !== null && Math.abs(actual - expected) <= eps, `expected ${expected}, got ${actual}`);

function toyInput(): AnalysisInput {
  return {
    epochs: [
      { epoch: 1, trainLoss: 2.5 },
      { epoch: 2, trainLoss: 2.0 },
      { epoch: 3, trainLoss: 1.5 },
    ],
    perplexity: [
      { epoch: 1, exampleId: 'a', nll: 10, tokens: 5, bytes: 20 },
      { epoch: 1, exampleId: 'b', nll: 2, tokens: 3, bytes: 12 },
      { epoch: 2, exampleId: 'a', nll: 12, tokens: 5, bytes: 20 },
      { epoch: 2, exampleId: 'b', nll: 4, tokens: 3, bytes: 12 },
      { epoch: 3, exampleId: 'a', nll: 15, tokens: 5, bytes: 20 },
      { epoch: 3, exampleId: 'b', nll: 5, tokens: 3, bytes: 12 },
    ],
    quality: [
      { epoch: 1, exampleId: 'x', sample: 0, score: 2 },
      { epoch: 1, exampleId: 'x', sample: 1, score: 4 },
      { epoch: 1, exampleId: 'y', sample: 0, score: 1 },
      { epoch: 1, exampleId: 'y', sample: 1, score: null },
      { epoch: 2, exampleId: 'x', sample: 0, score: 5 },
      { epoch: 2, exampleId: 'x', sample: 1, score: 5 },
      { epoch: 2, exampleId: 'y', sample: 0, score: 3 },
      { epoch: 2, exampleId: 'y', sample: 1, score: 4 },
      { epoch: 3, exampleId: 'x', sample: 0, score: 6 },
      { epoch: 3, exampleId: 'x', sample: 1, score: null },
      { epoch: 3, exampleId: 'y', sample: 0, score: null },
      { epoch: 3, exampleId: 'y', sample: 1, score: null },
    ],
    window: [2, 3],
    bootstrap: 100,
    seed: 9,
    judge: { kind: 'rubric', description: 'rubric proxy' },
    data: { train: 10, heldout: 2, dev: 2, sources: { builtin: 'wordnet' } },
    backend: { training: 'cpu' },
    durationsSeconds: { total: 1 },
  };
}

test('per-epoch figures match the hand computation', () => {
  const m = analyze(toyInput());
  assert.deepEqual(m.epochs.map((e) => e.epoch), [1, 2, 3]);
  // epoch 1: nll 12 over 8 tokens, 32 bytes
  close(m.epochs[0]!.perplexity, Math.exp(12 / 8));
  close(m.epochs[0]!.bitsPerByte, 12 / Math.LN2 / 32);
  // quality: x -> mean(2, 4) = 3; y -> 1 (the null sample is skipped); epoch mean (3 + 1) / 2 = 2
  close(m.epochs[0]!.quality.mean, 2);
  assert.equal(m.epochs[0]!.quality.n, 2);
  assert.equal(m.epochs[0]!.quality.invalid, 1);
  close(m.epochs[0]!.trainLoss, 2.5);
  // epoch 2: nll 16 / 8; quality (5 + 3.5) / 2 = 4.25
  close(m.epochs[1]!.perplexity, Math.exp(2));
  close(m.epochs[1]!.quality.mean, 4.25);
  // epoch 3: only x has a valid score -> quality 6 over n = 1, 3 invalid
  close(m.epochs[2]!.perplexity, Math.exp(20 / 8));
  close(m.epochs[2]!.quality.mean, 6);
  assert.equal(m.epochs[2]!.quality.n, 1);
  assert.equal(m.epochs[2]!.quality.invalid, 3);
  // The bootstrap interval brackets the mean.
  for (const e of m.epochs) assert.ok(e.quality.ciLow! <= e.quality.mean! && e.quality.mean! <= e.quality.ciHigh!);
  // Window [2, 3]: epoch 3 has the best quality; lowest perplexity is epoch 1.
  assert.equal(m.selection.epoch, 3);
  assert.deepEqual(m.selection.alternatives.map((a) => a.epoch), [3, 1, 3, 3]);
  close(m.selection.qualityLostByPerplexity.mean, 6 - 2);
  // Perplexity and quality both rise over the three epochs: rank correlations are +1; Pearson is
  // just below 1 (perplexity grows geometrically, quality by 2.25 then 1.75).
  assert.ok(m.correlation.pearson.r! > 0.95 && m.correlation.pearson.r! < 1);
  close(m.correlation.spearman.r, 1);
  close(m.correlation.kendall.r, 1);
  // Exact permutation over 3! pairings: identity and reversal -> 2/6.
  close(m.correlation.spearman.p, 2 / 6);
});

test('metrics.json has exactly the agreed keys', () => {
  const m = JSON.parse(JSON.stringify(analyze(syntheticInput({ bootstrap: 50 }))));
  assert.deepEqual(Object.keys(m), ['epochs', 'correlation', 'selection', 'judge', 'data', 'backend', 'durationsSeconds']);
  assert.deepEqual(Object.keys(m.epochs[0]), ['epoch', 'perplexity', 'bitsPerByte', 'quality', 'trainLoss']);
  assert.deepEqual(Object.keys(m.epochs[0].quality), ['mean', 'ciLow', 'ciHigh', 'n', 'invalid', 'invalidByReason']);
  assert.deepEqual(Object.keys(m.correlation), ['pearson', 'spearman', 'kendall', 'summary']);
  for (const k of ['pearson', 'spearman', 'kendall']) assert.deepEqual(Object.keys(m.correlation[k]), ['r', 'ciLow', 'ciHigh', 'p']);
  assert.equal(typeof m.correlation.summary, 'string');
  assert.deepEqual(Object.keys(m.selection), ['window', 'epoch', 'rule', 'alternatives', 'qualityLostByPerplexity', 'stability']);
  for (const a of m.selection.alternatives) assert.deepEqual(Object.keys(a), ['rule', 'epoch', 'quality', 'perplexity']);
  assert.deepEqual(Object.keys(m.selection.qualityLostByPerplexity), ['mean', 'ciLow', 'ciHigh']);
  assert.deepEqual(m.selection.window, [5, 10]);
  assert.equal(m.judge.kind, 'rubric');
  assert.deepEqual(Object.keys(m.data), ['train', 'heldout', 'dev']);
  const fractions = Object.values(m.selection.stability) as number[];
  close(fractions.reduce((a, b) => a + b, 0), 1);
});

test('the sentence follows the sign of the data, both ways', () => {
  // Quality rises over epochs 1..15; perplexity either rises too (LIMA's direction) or falls.
  const quality = (e: number) => 1.5 + e * 0.25;
  const rising = analyze(syntheticInput({ quality, nllPerToken: (e) => 2 + 0.05 * e, bootstrap: 200 }));
  assert.ok(rising.correlation.pearson.r! > 0.8);
  assert.ok(rising.correlation.pearson.ciLow! > 0);
  assert.match(rising.correlation.summary, /^r\(perplexity, quality\) = \+0\.\d\d \[\+0\.\d\d, \+[01]\.\d\d\]: perplexity rose with quality/);
  const falling = analyze(syntheticInput({ quality, nllPerToken: (e) => 3 - 0.05 * e, bootstrap: 200 }));
  assert.ok(falling.correlation.pearson.r! < -0.8);
  assert.ok(falling.correlation.pearson.ciHigh! < 0);
  assert.match(falling.correlation.summary, /^r\(perplexity, quality\) = -[01]\.\d\d .*: perplexity fell as quality rose/);
  // With perplexity falling and quality rising the two rules agree more: no quality lost.
  const lost = falling.selection.qualityLostByPerplexity.mean!;
  assert.ok(lost <= rising.selection.qualityLostByPerplexity.mean!);
});

test('an interval spanning 0 reads as no clear relation', () => {
  const s = correlationSentence({ r: 0.2, ciLow: -0.3, ciHigh: 0.6, p: 0.5 }, 7, 3);
  assert.match(s, /^r\(perplexity, quality\) = \+0\.20 \[-0\.30, \+0\.60\]: no clear relation/);
  assert.match(s, /lowest-perplexity epoch is 3, the selected one 7/);
  assert.match(correlationSentence({ r: null, ciLow: null, ciHigh: null, p: null }, null, null), /undefined/);
});

test('a clear Pearson r with unclear rank correlations says so', () => {
  const pearson = { r: -0.75, ciLow: -0.83, ciHigh: -0.27, p: 0.005 };
  const unclear = correlationSentence(pearson, 9, 15, { spearman: { r: -0.34, ciLow: -0.66, ciHigh: -0.01, p: 0.2 }, kendall: { r: -0.28, ciLow: -0.51, ciHigh: 0.02, p: 0.18 } });
  assert.match(unclear, /perplexity fell as quality rose/);
  assert.match(unclear, /rank correlations are less clear \(Spearman -0\.34 \[-0\.66, -0\.01\], Kendall -0\.28 \[-0\.51, \+0\.02\]\)/);
  const agreeing = correlationSentence(pearson, 9, 15, { spearman: { r: -0.6, ciLow: -0.8, ciHigh: -0.2, p: 0.01 }, kendall: { r: -0.5, ciLow: -0.7, ciHigh: -0.1, p: 0.01 } });
  assert.doesNotMatch(agreeing, /rank correlations/);
});

test('a window with no evaluated epoch falls back, and says so', () => {
  const input = syntheticInput({ epochs: 4, bootstrap: 50 });
  input.window = [5, 10];
  const m = analyze(input);
  assert.match(m.selection.rule, /^fallback: no epoch in window 5\.\.10/);
  assert.equal(m.selection.epoch, m.selection.alternatives[3]!.epoch, 'fallback picks the best epoch overall');
  assert.match(m.selection.alternatives[0]!.rule, /fallback/);
});

test('deterministic from the seed', () => {
  const a = JSON.stringify(analyze(syntheticInput({ bootstrap: 100 })));
  const b = JSON.stringify(analyze(syntheticInput({ bootstrap: 100 })));
  assert.equal(a, b);
  const other = syntheticInput({ bootstrap: 100 });
  other.seed = 43;
  const c = analyze(other);
  assert.notEqual(JSON.stringify(c.epochs.map((e) => e.quality.ciLow)), JSON.stringify(JSON.parse(a).epochs.map((e: { quality: { ciLow: number } }) => e.quality.ciLow)));
});

test('bad input names the record and field', () => {
  const input = toyInput();
  input.perplexity[3]!.nll = Number.NaN;
  assert.throws(() => analyze(input), /perplexity\[3\] \(example "b", epoch 2\)\.nll: expected a finite number/);
  const q = toyInput();
  q.quality[5]!.score = 7;
  assert.throws(() => analyze(q), /quality\[5\] \(example "x", epoch 2, sample 1\)\.score: expected 1\.\.6 or null/);
  const dup = toyInput();
  dup.perplexity.push({ ...dup.perplexity[0]! });
  assert.throws(() => analyze(dup), /perplexity\[6\].*duplicate/);
});

test('invalid judgments are counted per epoch by reason; the counts sum to invalid and leave the means alone', () => {
  const input = toyInput();
  const reasons: Record<string, string | undefined> = { '1:y:1': 'truncated', '3:x:1': 'no-choice', '3:y:0': 'truncated', '3:y:1': undefined };
  for (const r of input.quality) {
    const key = `${r.epoch}:${r.exampleId}:${r.sample}`;
    if (key in reasons && reasons[key] !== undefined) r.invalidReason = reasons[key];
  }
  const m = JSON.parse(JSON.stringify(analyze(input)));
  assert.deepEqual(m.epochs[0].quality.invalidByReason, { truncated: 1 });
  assert.deepEqual(m.epochs[1].quality.invalidByReason, {});
  // A null score without a reason counts as "unspecified"; keys come sorted.
  assert.deepEqual(m.epochs[2].quality.invalidByReason, { 'no-choice': 1, truncated: 1, unspecified: 1 });
  assert.deepEqual(Object.keys(m.epochs[2].quality.invalidByReason), ['no-choice', 'truncated', 'unspecified']);
  for (const e of m.epochs) {
    assert.equal(Object.values(e.quality.invalidByReason as Record<string, number>).reduce((a, b) => a + b, 0), e.quality.invalid);
  }
  // The reasons change nothing else: same figures as without them.
  const plain = JSON.parse(JSON.stringify(analyze(toyInput())));
  for (const e of plain.epochs) delete e.quality.invalidByReason;
  for (const e of m.epochs) delete e.quality.invalidByReason;
  assert.deepEqual(m, plain);
});

test('an invalid reason must be a non-empty string and only with a null score', () => {
  const withScore = toyInput();
  withScore.quality[0]!.invalidReason = 'truncated';
  assert.throws(() => analyze(withScore), /quality\[0\] \(example "x", epoch 1, sample 0\)\.invalidReason: given \("truncated"\) with a valid score 2/);
  const empty = toyInput();
  empty.quality[3]!.invalidReason = ' ';
  assert.throws(() => analyze(empty), /quality\[3\] \(example "y", epoch 1, sample 1\)\.invalidReason: expected a non-empty string/);
});
