// analyze(): figures on a hand-computed toy input, the exact metrics.json shape, the sign of the
// correlation sentence both ways, undefined bootstrap replicates counted (checked against a replay
// of the seeded draws) and unreliable intervals, when the sentence may state a direction, the
// window fallback, determinism and input errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, correlationSentence, undefinedReplicatesText, type AnalysisInput } from '../../src/analysis/index.ts';
import { deriveSeed, mulberry32 } from '../../src/util/rng.ts';
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
  assert.deepEqual(Object.keys(m), ['epochs', 'correlation', 'selection', 'judge', 'data', 'backend', 'durationsSeconds', 'analysis']);
  assert.deepEqual(m.analysis, { bootstrap: 50, confidence: 0.95, alpha: 0.05, maxUndefinedShare: 0.05 });
  const counts = ['replicates', 'undefinedReplicates', 'undefinedByReason', 'intervalUnreliable'];
  assert.deepEqual(Object.keys(m.epochs[0]), ['epoch', 'perplexity', 'perplexityCi', 'bitsPerByte', 'quality', 'trainLoss']);
  assert.deepEqual(Object.keys(m.epochs[0].perplexityCi), ['low', 'high', ...counts]);
  assert.deepEqual(Object.keys(m.epochs[0].quality), ['mean', 'ciLow', 'ciHigh', 'n', 'invalid', 'invalidByReason', ...counts]);
  assert.deepEqual(Object.keys(m.correlation), ['pearson', 'spearman', 'kendall', 'pairedEpochs', 'summary']);
  assert.equal(m.correlation.pairedEpochs, 15);
  for (const k of ['pearson', 'spearman', 'kendall']) {
    assert.deepEqual(Object.keys(m.correlation[k]), ['r', 'ciLow', 'ciHigh', 'p', ...counts]);
    // Every dev example scored at every epoch, quality varies: no resample leaves r undefined.
    assert.deepEqual([m.correlation[k].replicates, m.correlation[k].undefinedReplicates, m.correlation[k].undefinedByReason, m.correlation[k].intervalUnreliable], [50, 0, {}, false]);
  }
  assert.equal(typeof m.correlation.summary, 'string');
  assert.deepEqual(Object.keys(m.selection), ['window', 'epoch', 'rule', 'alternatives', 'qualityLostByPerplexity', 'stability']);
  for (const a of m.selection.alternatives) assert.deepEqual(Object.keys(a), ['rule', 'epoch', 'quality', 'perplexity']);
  assert.deepEqual(Object.keys(m.selection.qualityLostByPerplexity), ['mean', 'ciLow', 'ciHigh', ...counts]);
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
  assert.ok(rising.correlation.pearson.p! < 0.05 && !rising.correlation.pearson.intervalUnreliable);
  assert.match(rising.correlation.summary, /^r\(perplexity, quality\) = \+0\.\d\d \[\+0\.\d\d, \+[01]\.\d\d\] across 15 epochs, permutation p < 0\.001: perplexity rose with quality, so the lowest-perplexity epoch is not the best one \(the direction LIMA reported\)\./);
  // What the interval resamples, and that r is over 15 points.
  assert.match(rising.correlation.summary, /The 95% interval resamples the dev and held-out examples \(the same draw at every epoch\); it keeps the 15 epochs fixed, so it does not reflect that r rests on only 15 points: the two-sided permutation p, over pairings of the epochs, does\./);
  const falling = analyze(syntheticInput({ quality, nllPerToken: (e) => 3 - 0.05 * e, bootstrap: 200 }));
  assert.ok(falling.correlation.pearson.r! < -0.8);
  assert.ok(falling.correlation.pearson.ciHigh! < 0);
  assert.match(falling.correlation.summary, /^r\(perplexity, quality\) = -[01]\.\d\d \[-[01]\.\d\d, -0\.\d\d\] across 15 epochs, permutation p < 0\.001: perplexity fell as quality rose, so the lowest-perplexity epoch tends to be a good one here \(the opposite of what LIMA reported\)/);
  // With perplexity falling and quality rising the two rules agree more: no quality lost.
  const lost = falling.selection.qualityLostByPerplexity.mean!;
  assert.ok(lost <= rising.selection.qualityLostByPerplexity.mean!);
});

test('an interval spanning 0 reads as the data cannot tell, with the numbers', () => {
  const s = correlationSentence({ r: 0.2, ciLow: -0.3, ciHigh: 0.6, p: 0.5 }, 7, 3, undefined, { pairedEpochs: 9 });
  assert.match(
    s,
    /^r\(perplexity, quality\) = \+0\.20 \[-0\.30, \+0\.60\] across 9 epochs, permutation p = 0\.500: the data cannot tell whether perplexity rises or falls with quality across epochs \(the 95% interval spans 0; p = 0\.500 is not below 0\.05\)/,
  );
  assert.match(s, /lowest-perplexity epoch is 3, the selected one 7/);
  assert.match(correlationSentence({ r: null, ciLow: null, ciHigh: null, p: null }, null, null), /undefined/);
  assert.match(correlationSentence({ r: null, ciLow: null, ciHigh: null, p: null }, null, null, undefined, { pairedEpochs: 2 }), /undefined: only 2 epochs have both figures \(at least 3 are needed\)/);
});

test('an interval excluding 0 with p above alpha states no direction (the CI study: r = -0.40 [-0.58, -0.11], p = 0.137)', () => {
  const s = correlationSentence({ r: -0.4, ciLow: -0.58, ciHigh: -0.11, p: 0.137 }, 9, 15, undefined, { pairedEpochs: 15 });
  assert.match(
    s,
    /^r\(perplexity, quality\) = -0\.40 \[-0\.58, -0\.11\] across 15 epochs, permutation p = 0\.137: the data cannot tell whether perplexity rises or falls with quality across epochs \(p = 0\.137 is not below 0\.05\)/,
  );
  assert.doesNotMatch(s, /perplexity fell as quality rose|perplexity rose with quality|LIMA reported/);
  // The same figures at a looser stated level do state the direction; a stricter level for the
  // interval is reported as such.
  assert.match(correlationSentence({ r: -0.4, ciLow: -0.58, ciHigh: -0.11, p: 0.137 }, 9, 15, undefined, { alpha: 0.2 }), /: perplexity fell as quality rose/);
  assert.match(correlationSentence({ r: -0.4, ciLow: -0.58, ciHigh: 0.01, p: 0.01 }, 9, 15, undefined, { confidence: 0.99 }), /\(the 99% interval spans 0\)/);
  // The point r and its interval on opposite sides of 0: no direction either.
  assert.match(correlationSentence({ r: 0.05, ciLow: -0.5, ciHigh: -0.1, p: 0.01 }, 9, 15), /cannot tell .*\(r and its interval lie on opposite sides of 0\)/);
  // No p-value: no direction.
  assert.match(correlationSentence({ r: -0.9, ciLow: -0.95, ciHigh: -0.8, p: null }, 9, 15), /cannot tell .*\(no permutation p-value\)/);
});

test('computed by analyze(): 3 epochs, interval clear of 0, yet exact permutation p >= 1/6', () => {
  // Perplexity and quality both rise over 3 epochs with many examples: a tight interval above 0,
  // but no test over the 3! = 6 pairings of 3 epochs can give p below 1/6.
  const input = syntheticInput({ epochs: 3, dev: 40, quality: (e) => 2 + e * 0.5, nllPerToken: (e) => 2 + 0.1 * e, bootstrap: 200 });
  input.window = [1, 3];
  const m = analyze(input);
  const c = m.correlation.pearson;
  assert.ok(c.ciLow! > 0, `interval [${c.ciLow}, ${c.ciHigh}] should exclude 0`);
  // Only the identity pairing reaches the observed |r| (the points are not exactly on a line).
  close(c.p, 1 / 6);
  assert.equal(c.intervalUnreliable, false);
  assert.match(m.correlation.summary, /across 3 epochs, permutation p = 0\.167: the data cannot tell .*\(p = 0\.167 is not below 0\.05\)/);
  assert.match(m.correlation.summary, /r rests on only 3 points/);
  // With alpha = 0.2 in the input, the direction is stated.
  const loose = analyze({ ...input, alpha: 0.2 });
  assert.match(loose.correlation.summary, /permutation p = 0\.167: perplexity rose with quality/);
  assert.equal(loose.analysis.alpha, 0.2);
});

/**
 * Replays analyze()'s seeded bootstrap draws: for each resample, whether its dev draw contains
 * none of `examples` (dev example indices in order of first appearance).
 */
function resamplesMissing(input: AnalysisInput, examples: number[]): boolean[] {
  const H = new Set(input.perplexity.map((r) => r.exampleId)).size;
  const D = new Set(input.quality.map((r) => r.exampleId)).size;
  const rng = mulberry32(deriveSeed(input.seed, 'analysis', 'bootstrap'));
  const out: boolean[] = [];
  for (let b = 0; b < input.bootstrap; b++) {
    for (let i = 0; i < H; i++) rng();
    let hit = false;
    for (let i = 0; i < D; i++) if (examples.includes(Math.floor(rng() * D))) hit = true;
    out.push(!hit);
  }
  return out;
}

/** Every dev score 4 except the given (epoch, example) ones; perplexity rises over 15 epochs. */
function almostConstantQuality(scores: Array<[epoch: number, example: number, score: number]>): AnalysisInput {
  const input = syntheticInput({ epochs: 15, dev: 20, heldout: 60, nllPerToken: (e) => 2 + 0.05 * e, bootstrap: 200 });
  for (const q of input.quality) q.score = 4;
  for (const [epoch, example, score] of scores) input.quality.find((q) => q.epoch === epoch && q.exampleId === `d${example}`)!.score = score;
  return input;
}

test('every dev score 4 except one 5: resamples with constant quality are counted, the interval is unreliable, no direction', () => {
  const input = almostConstantQuality([[15, 3, 5]]);
  const m = analyze(input);
  // r is undefined exactly in the resamples that did not draw example d3 (about (19/20)^20 = 36%).
  const expected = resamplesMissing(input, [3]).filter(Boolean).length;
  assert.ok(expected > 40 && expected < 100, `replayed ${expected} of 200`);
  for (const k of ['pearson', 'spearman', 'kendall'] as const) {
    const c = m.correlation[k];
    assert.notEqual(c.r, null);
    assert.equal(c.replicates, 200);
    assert.equal(c.undefinedReplicates, expected, k);
    assert.deepEqual(c.undefinedByReason, { constantQuality: expected });
    assert.equal(c.intervalUnreliable, true);
  }
  const s = m.correlation.summary;
  assert.match(s, new RegExp(`the data cannot tell .*\\(the interval is unreliable: ${expected} of 200 resamples left r undefined \\(constant quality\\)`));
  assert.doesNotMatch(s, /perplexity rose with quality|perplexity fell as quality rose|LIMA reported/);
  // The epoch means themselves are always defined here.
  for (const e of m.epochs) assert.deepEqual([e.quality.undefinedReplicates, e.quality.intervalUnreliable], [0, false]);
});

test('an unreliable interval alone withholds the direction, even with p < alpha and the interval clear of 0', () => {
  // One example carries the whole trend (1 at epoch 1 up to 6 at epoch 15) while perplexity
  // rises; every other example scores 4 throughout. Without that example a resample has
  // constant quality, so r is undefined in about a third of the resamples.
  const input = almostConstantQuality(Array.from({ length: 15 }, (_, i) => [i + 1, 3, Math.min(6, 1 + Math.floor(i / 2.8))] as [number, number, number]));
  const m = analyze(input);
  const c = m.correlation.pearson;
  assert.ok(c.ciLow! > 0 && c.p! < 0.05, `r ${c.r} [${c.ciLow}, ${c.ciHigh}], p ${c.p}`);
  assert.equal(c.undefinedReplicates, resamplesMissing(input, [3]).filter(Boolean).length);
  assert.equal(c.intervalUnreliable, true);
  assert.match(m.correlation.summary, /: the data cannot tell .*\(the interval is unreliable: \d+ of 200 resamples left r undefined \(constant quality\)\)/);
  // The share threshold is the setting's: allowing any share, the same data state a direction.
  const lenient = analyze({ ...input, maxUndefinedShare: 1 });
  assert.equal(lenient.correlation.pearson.intervalUnreliable, false);
  assert.equal(lenient.correlation.pearson.undefinedReplicates, c.undefinedReplicates);
  assert.match(lenient.correlation.summary, /: perplexity rose with quality/);
});

test('an epoch whose resamples can lack a valid judgment: its interval and the quality lost are counted too', () => {
  // Perplexity rises, so epoch 1 is the lowest-perplexity one; at epoch 1 only d3 has a valid
  // judgment. A resample without d3 leaves epoch 1's mean, the quality lost and r undefined.
  const input = syntheticInput({ epochs: 8, dev: 20, heldout: 60, nllPerToken: (e) => 2 + 0.05 * e, quality: (e) => 2 + e * 0.3, bootstrap: 200 });
  for (const q of input.quality) if (q.epoch === 1 && q.exampleId !== 'd3') q.score = null;
  const m = analyze(input);
  const expected = resamplesMissing(input, [3]).filter(Boolean).length;
  const q1 = m.epochs[0]!.quality;
  assert.equal(q1.n, 1);
  assert.deepEqual([q1.replicates, q1.undefinedReplicates, q1.undefinedByReason, q1.intervalUnreliable], [200, expected, { noValidJudgment: expected }, true]);
  for (const e of m.epochs.slice(1)) assert.equal(e.quality.undefinedReplicates, 0);
  assert.equal(m.selection.alternatives[1]!.epoch, 1, 'lowest perplexity at epoch 1');
  const lost = m.selection.qualityLostByPerplexity;
  assert.deepEqual([lost.undefinedReplicates, lost.undefinedByReason, lost.intervalUnreliable], [expected, { noValidJudgment: expected }, true]);
  assert.deepEqual(m.correlation.pearson.undefinedByReason, { noValidJudgment: expected });
  assert.match(m.correlation.summary, new RegExp(`${expected} of 200 resamples left r undefined \\(no valid judgment\\)`));
  // A 50% share allowed: none of them unreliable (the count is unchanged).
  const lenient = analyze({ ...input, maxUndefinedShare: 0.5 });
  assert.equal(lenient.epochs[0]!.quality.intervalUnreliable, false);
  assert.equal(lenient.epochs[0]!.quality.undefinedReplicates, expected);
});

test('undefinedReplicatesText names each cause', () => {
  assert.equal(undefinedReplicatesText({ replicates: 200, undefinedReplicates: 72, undefinedByReason: { constantQuality: 72 } }, 'r'), '72 of 200 resamples left r undefined (constant quality)');
  assert.equal(
    undefinedReplicatesText({ replicates: 200, undefinedReplicates: 80, undefinedByReason: { noValidJudgment: 12, constantQuality: 68 } }, 'r'),
    '80 of 200 resamples left r undefined (no valid judgment: 12, constant quality: 68)',
  );
  assert.equal(undefinedReplicatesText({ replicates: 200, undefinedReplicates: 0, undefinedByReason: {} }, 'r'), '0 of 200 resamples left r undefined');
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
  assert.throws(() => analyze({ ...toyInput(), confidence: 1 }), /analysis input: confidence: expected a number strictly between 0 and 1, got 1/);
  assert.throws(() => analyze({ ...toyInput(), alpha: 0 }), /analysis input: alpha: expected a number strictly between 0 and 1, got 0/);
  assert.throws(() => analyze({ ...toyInput(), maxUndefinedShare: 1.5 }), /analysis input: maxUndefinedShare: expected a number in \[0, 1\], got 1\.5/);
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
