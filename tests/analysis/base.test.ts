// The base model (epoch 0): evaluated like an epoch into metrics.base, a reference row left out
// of every statistic across epochs (checked bit for bit against the input without it), and what
// fine-tuning changed at the selected epoch, paired by example.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, type AnalysisInput, type Metrics } from '../../src/analysis/index.ts';
import { syntheticInput, withBase } from './fixtures.ts';

const close = (actual: number | null | undefined, expected: number, eps = 1e-9) =>
  assert.ok(typeof actual === 'number' && Math.abs(actual - expected) <= eps, `expected ${expected}, got ${actual}`);

const study = () => syntheticInput({ epochs: 8, heldout: 40, dev: 12, samples: 2, invalidRate: 0.1, bootstrap: 80 });

/** metrics.json text without the base key: what must not move when a base is added. */
function withoutBase(m: Metrics): string {
  const { base: _base, ...rest } = m;
  return JSON.stringify(rest);
}

test('extreme base rows change nothing across epochs, bit for bit, first or last in the input', () => {
  const plain = study();
  const reference = JSON.stringify(analyze(plain));
  // The base has the lowest perplexity and the best possible quality by far: if it leaked into any
  // rule (lowest perplexity, best overall, last, the window), the correlation, the permutation p,
  // the quality lost or the stability, the figures would move.
  for (const first of [false, true]) {
    const m = analyze(withBase(plain, { nllPerToken: 0.01, score: () => 6, trainLoss: 0.001, first }));
    assert.ok(m.base, 'metrics.base is filled');
    assert.equal(withoutBase(m), reference);
    assert.deepEqual(m.epochs.map((e) => e.epoch), [1, 2, 3, 4, 5, 6, 7, 8]);
  }
  // And the other extreme: worst quality, huge perplexity, every judgment of one example invalid.
  const worst = analyze(withBase(plain, { nllPerToken: 40, score: (d) => (d === 0 ? null : 1) }));
  assert.equal(withoutBase(worst), reference);
  // A window that reaches down to epoch 0 still never selects the base.
  const wide = { ...plain, window: [0, 8] as [number, number] };
  const wideBase = analyze(withBase(wide, { nllPerToken: 0.01, score: () => 6 }));
  assert.equal(withoutBase(wideBase), JSON.stringify(analyze(wide)));
  assert.notEqual(wideBase.selection.epoch, 0);
  assert.ok(!('0' in wideBase.selection.stability));
  assert.ok(wideBase.selection.alternatives.every((a) => a.epoch !== 0));
});

test('without epoch-0 rows there is no base key at all', () => {
  const m = analyze(study());
  assert.ok(!('base' in m));
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(m))), ['epochs', 'correlation', 'selection', 'judge', 'data', 'backend', 'durationsSeconds', 'analysis']);
});

test('the base row is computed like an epoch: hand-checked figures, invalid counts, interval', () => {
  const input = withBase(study(), { nllPerToken: 2.5, score: (d, s) => (d === 3 && s === 1 ? null : d < 6 ? 2 : 3), trainLoss: 4.25 });
  const m = analyze(input);
  const b = m.base!;
  // Placed right after epochs in metrics.json.
  assert.deepEqual(Object.keys(JSON.parse(JSON.stringify(m))).slice(0, 3), ['epochs', 'base', 'correlation']);
  assert.equal(b.epoch, 0);
  assert.equal(b.reference, true);
  const rows = input.perplexity.filter((r) => r.epoch === 0);
  const nll = rows.reduce((a, r) => a + r.nll, 0);
  const tokens = rows.reduce((a, r) => a + r.tokens, 0);
  const bytes = rows.reduce((a, r) => a + r.bytes, 0);
  close(b.perplexity, Math.exp(nll / tokens));
  close(b.bitsPerByte, nll / Math.LN2 / bytes);
  // Examples d0..d5 score 2, d6..d11 score 3 (d3's invalid sample is skipped): mean 2.5.
  close(b.quality.mean, 2.5);
  assert.equal(b.quality.n, 12);
  assert.equal(b.quality.invalid, 1);
  assert.deepEqual(b.quality.invalidByReason, { truncated: 1 });
  assert.equal(b.quality.replicates, 80);
  assert.ok(b.quality.ciLow! <= 2.5 && 2.5 <= b.quality.ciHigh! && b.quality.ciLow! >= 2 && b.quality.ciHigh! <= 3);
  assert.equal(b.trainLoss, 4.25);
  // A base without a pretraining loss: null; deterministic from the seed.
  const noLoss = analyze(withBase(study()));
  assert.equal(noLoss.base!.trainLoss, null);
  assert.equal(JSON.stringify(analyze(withBase(study()))), JSON.stringify(noLoss));
});

test('what fine-tuning changed: the selected epoch minus the base, paired by example', () => {
  const plain = study();
  const sel = analyze(plain).selection.epoch!;
  // The base scores and perplexities are the selected epoch's own: a paired bootstrap sees no change
  // in any resample (an unpaired one would give a wide interval).
  const copy: AnalysisInput = structuredClone(plain);
  copy.epochs.push({ epoch: 0, trainLoss: null });
  for (const r of plain.perplexity) if (r.epoch === sel) copy.perplexity.push({ ...r, epoch: 0 });
  for (const r of plain.quality) if (r.epoch === sel) copy.quality.push({ ...r, epoch: 0 });
  const same = analyze(copy).base!;
  assert.equal(same.change!.epoch, sel);
  close(same.change!.quality.mean, 0, 1e-12);
  close(same.change!.quality.ciLow, 0, 1e-12);
  close(same.change!.quality.ciHigh, 0, 1e-12);
  close(same.change!.perplexityRatio.value, 1, 1e-12);
  close(same.change!.perplexityRatio.ciLow, 1, 1e-12);
  close(same.change!.perplexityRatio.ciHigh, 1, 1e-12);
  assert.match(same.summary, /cannot tell whether fine-tuning changed mean dev quality/);

  // A worse base: the change is exactly the difference of the two rows, its interval above 0.
  const m = analyze(withBase(plain, { nllPerToken: 3, score: () => 1 }));
  const row = m.epochs.find((e) => e.epoch === sel)!;
  const c = m.base!.change!;
  assert.equal(c.quality.mean, row.quality.mean! - m.base!.quality.mean!);
  assert.equal(c.perplexityRatio.value, row.perplexity! / m.base!.perplexity!);
  assert.ok(c.quality.ciLow! > 0 && c.quality.ciLow! <= c.quality.mean! && c.quality.mean! <= c.quality.ciHigh!);
  assert.ok(c.perplexityRatio.ciLow! <= c.perplexityRatio.value! && c.perplexityRatio.value! <= c.perplexityRatio.ciHigh!);
  assert.equal(c.quality.replicates, 80);
  assert.equal(c.quality.intervalUnreliable, false);
  assert.match(m.base!.summary, /^The base model \(epoch 0, before fine-tuning\) is the reference row: mean dev quality 1\.00, held-out perplexity /);
  assert.match(m.base!.summary, new RegExp(`At the selected epoch ${sel} mean dev quality is \\d\\.\\d\\d, \\+\\d\\.\\d\\d against the base \\[\\+\\d\\.\\d\\d, \\+\\d\\.\\d\\d\\] \\(95% bootstrap interval over the dev examples, paired: one draw scores both models\\): fine-tuning raised mean dev quality`));
  assert.match(m.base!.summary, /so the change leans optimistic/);
  assert.match(m.base!.summary, /ratio \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]\./);
  assert.match(m.base!.summary, /over the fine-tuning epochs only\.$/);
});

test('no selected epoch: the base row without a change; a base with no valid judgment', () => {
  const input = study();
  for (const q of input.quality) q.score = null;
  const m = analyze(withBase(input, { score: () => null }));
  assert.equal(m.selection.epoch, null);
  assert.equal(m.base!.change, null);
  assert.equal(m.base!.quality.mean, null);
  assert.equal(m.base!.quality.ciLow, null);
  assert.equal(m.base!.quality.undefinedReplicates, 80);
  assert.deepEqual(m.base!.quality.undefinedByReason, { noValidJudgment: 80 });
  assert.match(m.base!.summary, /mean dev quality n\/a.*No fine-tuning epoch was selected, so there is no change to report\./);
});

test('trainLoss may be null at any epoch (not logged), never NaN', () => {
  const unlogged = study();
  (unlogged.epochs[2] as { trainLoss: number | null }).trainLoss = null;
  assert.equal(analyze(unlogged).epochs[2]!.trainLoss, null);
  const bad = study();
  (bad.epochs[2] as { trainLoss: number | null }).trainLoss = NaN;
  assert.throws(() => analyze(bad), /epochs\[2\] \(epoch 3\)\.trainLoss: expected a finite number or null \(not logged\), got NaN/);
  // Only a train-loss row for the base: a base row with no figures, still out of every rule.
  const onlyLoss = study();
  onlyLoss.epochs.push({ epoch: 0, trainLoss: 5 });
  const m = analyze(onlyLoss);
  assert.equal(m.base!.trainLoss, 5);
  assert.equal(m.base!.perplexity, null);
  assert.equal(m.base!.quality.mean, null);
  assert.equal(m.base!.change!.quality.mean, null);
  assert.equal(withoutBase(m), JSON.stringify(analyze(study())));
});
