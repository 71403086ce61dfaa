// Selection rules on constructed per-epoch tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBestOverall, selectInWindow, selectLast, selectMinPerplexity } from '../../src/analysis/select.ts';

const epochs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
function table(quality: number[], perplexity: number[]) {
  return { epochs, quality, perplexity };
}

test('picks the best quality inside the window, ignoring better epochs outside it', () => {
  const q = [1, 2, 6, 3, 3, 4, 5, 4, 3, 3, 5.9, 2];
  const p = [9, 8, 7, 6, 7, 8, 9, 10, 11, 12, 13, 14];
  const f = table(q, p);
  assert.deepEqual(selectInWindow(f, [5, 10]), { index: 6, fallback: false }); // epoch 7 (quality 5)
  assert.equal(selectBestOverall(f), 2); // epoch 3 (quality 6)
  assert.equal(selectMinPerplexity(f), 3); // epoch 4 (perplexity 6)
  assert.equal(selectLast(f), 11); // epoch 12
  // Window bounds are inclusive.
  assert.equal(selectInWindow(f, [3, 3]).index, 2);
  assert.equal(selectInWindow(f, [8, 11]).index, 10);
});

test('quality ties go to the lower perplexity, then to the earlier epoch', () => {
  const q = [1, 1, 1, 1, 4, 4, 4, 2, 2, 2, 1, 1];
  // epochs 5, 6, 7 tie on quality; 6 and 7 tie on the lowest perplexity -> 6
  const p = [9, 9, 9, 9, 8, 7, 7, 9, 9, 9, 9, 9];
  assert.equal(epochs[selectInWindow(table(q, p), [5, 10]).index], 6);
  // Without a perplexity difference the earliest tied epoch wins.
  const flat = new Array(12).fill(5);
  assert.equal(epochs[selectInWindow(table(q, flat), [5, 10]).index], 5);
  // A missing perplexity loses the tie-break against a measured one.
  const missing = [9, 9, 9, 9, NaN, 7.5, NaN, 9, 9, 9, 9, 9];
  assert.equal(epochs[selectInWindow(table(q, missing), [5, 10]).index], 6);
});

test('epochs without a quality score are not candidates', () => {
  const q = [1, 1, 1, 1, NaN, 2, NaN, 2.5, NaN, NaN, 1, 1];
  const p = new Array(12).fill(3);
  assert.equal(epochs[selectInWindow(table(q, p), [5, 10]).index], 8);
});

test('falls back to all epochs, flagged, when the window holds no evaluated epoch', () => {
  const q = [1, 3, 2, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN];
  const p = [5, 4, 3, 9, 9, 9, 9, 9, 9, 9, 9, 9];
  const choice = selectInWindow(table(q, p), [5, 10]);
  assert.equal(choice.fallback, true);
  assert.equal(epochs[choice.index], 2);
  const none = selectInWindow(table(new Array(12).fill(NaN), p), [5, 10]);
  assert.deepEqual(none, { index: -1, fallback: true });
});

test('minimum perplexity ties go to the earlier epoch (as HF keeps the first best)', () => {
  const p = [5, 4, 3, 3, 3, 6, 7, 8, 9, 10, 11, 12];
  assert.equal(epochs[selectMinPerplexity(table(new Array(12).fill(1), p))], 3);
});
