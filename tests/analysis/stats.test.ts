// Statistics checked against values worked out by hand (the arithmetic is in the comments).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { averageRanks, bootstrapMeanInterval, isConstant, kendallTauB, pearson, permutationPValue, quantile, replicateSummary, spearman } from '../../src/analysis/stats.ts';
import { mulberry32 } from '../../src/util/rng.ts';

const close = (actual: number, expected: number, eps = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= eps, `expected ${expected}, got ${actual}`);

// x = 1..5, y = 2,4,5,4,5
const x = [1, 2, 3, 4, 5];
const y = [2, 4, 5, 4, 5];

test('pearson on a small vector', () => {
  // dx = -2,-1,0,1,2; dy = -2,0,1,0,1 -> sxy = 6, sxx = 10, syy = 6 -> r = 6 / sqrt(60)
  close(pearson(x, y), 6 / Math.sqrt(60));
  close(pearson([1, 2, 3], [3, 2, 1]), -1);
  assert.ok(Number.isNaN(pearson([1, 2, 3], [5, 5, 5])), 'constant vector has no correlation');
});

test('a constant vector has no correlation even when its mean does not round back to its value', () => {
  // 15 x 4.05 sums to 60.75000000000001 in floating point: the deviations from that mean are
  // tiny but not 0, and r used to come out 0 instead of undefined.
  const xs = Array.from({ length: 15 }, (_, i) => i + 1);
  for (const c of [4.05, 3.35, 0.1, 1 / 3]) {
    for (const stat of [pearson, spearman, kendallTauB]) {
      assert.ok(Number.isNaN(stat(xs, xs.map(() => c))), `${stat.name}: constant ${c}`);
      assert.ok(Number.isNaN(stat(xs.map(() => c), xs)), `${stat.name}: constant ${c} as x`);
    }
  }
  assert.equal(isConstant([4.05, 4.05, 4.05]), true);
  assert.equal(isConstant([4.05, 4.05, 4.050000000000001]), false);
  assert.equal(isConstant([]), true);
});

test('replicateSummary counts the undefined replicates it leaves out of the interval', () => {
  // Defined 1..5 (quantiles as quantile() gives them); two NaN.
  const s = replicateSummary([3, NaN, 1, 5, NaN, 2, 4], 0.5);
  close(s.low, quantile([1, 2, 3, 4, 5], 0.25));
  close(s.high, quantile([1, 2, 3, 4, 5], 0.75));
  assert.equal(s.replicates, 7);
  assert.equal(s.undefinedReplicates, 2);
  const none = replicateSummary([NaN, NaN], 0.95);
  assert.ok(Number.isNaN(none.low) && Number.isNaN(none.high));
  assert.equal(none.undefinedReplicates, 2);
});

test('average ranks share tied positions', () => {
  // 2 -> 1; the two 4s span ranks 2,3 -> 2.5; the two 5s span 4,5 -> 4.5
  assert.deepEqual(averageRanks(y), [1, 2.5, 4.5, 2.5, 4.5]);
  assert.deepEqual(averageRanks([3, 3, 3]), [2, 2, 2]);
});

test('spearman with ties', () => {
  // ranks y = 1,2.5,4.5,2.5,4.5 (mean 3): dy = -2,-0.5,1.5,-0.5,1.5; dx = -2,-1,0,1,2
  // sxy = 4 + 0.5 + 0 - 0.5 + 3 = 7; sxx = 10; syy = 4 + .25 + 2.25 + .25 + 2.25 = 9 -> 7 / sqrt(90)
  close(spearman(x, y), 7 / Math.sqrt(90));
});

test('kendall tau-b with ties', () => {
  // 10 pairs: concordant 7, discordant 1 (y3=5 > y4=4), tied in y 2 ((2,4) and (3,5)), none tied in x
  // tau_b = (7 - 1) / sqrt((10 - 0) * (10 - 2)) = 6 / sqrt(80)
  close(kendallTauB(x, y), 6 / Math.sqrt(80));
  // ties in both: x = 1,1,2,3; y = 1,2,2,3 -> pairs: (1,2) tie x; (1,3) C; (1,4) C; (2,3) tie y; (2,4) C; (3,4) C
  // C = 4, D = 0, tiesX = 1, tiesY = 1 -> 4 / sqrt(5 * 5) = 0.8
  close(kendallTauB([1, 1, 2, 3], [1, 2, 2, 3]), 0.8);
});

test('exact permutation p-value on a perfectly monotone 4-point case is 2/24', () => {
  // Two-sided: of the 4! = 24 pairings only the identity and the reversal reach |r| = 1.
  for (const stat of [pearson, spearman, kendallTauB]) {
    const res = permutationPValue([1, 2, 3, 4], [10, 20, 30, 45], stat, mulberry32(1));
    assert.equal(res.exact, true);
    assert.equal(res.permutations, 24);
    close(res.p, 2 / 24);
  }
  // Decreasing is just as extreme.
  close(permutationPValue([1, 2, 3, 4], [4, 3, 2, 1], pearson, mulberry32(1)).p, 2 / 24);
});

test('Monte Carlo permutation p-value for many epochs is seeded and plausible', () => {
  const n = 12;
  const xs = Array.from({ length: n }, (_, i) => i);
  const mono = permutationPValue(xs, xs.map((v) => v * 2), pearson, mulberry32(5), 2000);
  assert.equal(mono.exact, false);
  // Nothing but the identity/reversal reaches |r| = 1, so p is (1 + hits) / 2001 with hits ~ 0.
  assert.ok(mono.p < 0.005, `p = ${mono.p}`);
  const again = permutationPValue(xs, xs.map((v) => v * 2), pearson, mulberry32(5), 2000);
  assert.equal(again.p, mono.p);
  // An alternating pattern has r near 0 and a large p.
  const flat = permutationPValue(xs, xs.map((v) => (v % 2 === 0 ? 1 : 0)), pearson, mulberry32(5), 2000);
  assert.ok(flat.p > 0.3, `p = ${flat.p}`);
});

test('quantile interpolates between order statistics', () => {
  // sorted 1,2,3,4: position (4-1)*0.25 = 0.75 -> 1 + 0.75 * (2 - 1)
  close(quantile([4, 1, 3, 2], 0.25), 1.75);
  close(quantile([4, 1, 3, 2, NaN], 0.5), 2.5);
});

test('bootstrap interval covers a known mean', () => {
  // 0..99: mean 49.5, sd 28.87, standard error 2.887 -> 95% interval about 49.5 +- 5.7
  const values = Array.from({ length: 100 }, (_, i) => i);
  const [lo, hi] = bootstrapMeanInterval(values, 2000, mulberry32(3));
  assert.ok(lo < 49.5 && hi > 49.5, `[${lo}, ${hi}] must cover 49.5`);
  assert.ok(lo > 42 && lo < 47, `low end ${lo} should be about 43.8`);
  assert.ok(hi > 52 && hi < 57, `high end ${hi} should be about 55.2`);
  assert.deepEqual(bootstrapMeanInterval([2, 2, 2], 100, mulberry32(3)), [2, 2]);
});
