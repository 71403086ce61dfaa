// Held-out examples fitted to the scoring window: prompts cut from the left, long answers in
// rolling windows, every answer token scored exactly once, and the same NLL as one pass when
// everything fits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelConfig } from '../../src/model/config.ts';
import type { Turn } from '../../src/data/types.ts';
import { encodeChat } from '../../src/data/chat-format.ts';
import { exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { scoreBatch, type ScoringExample } from '../../src/eval/scoring.ts';
import { fitHeldout, fitText, heldoutCoverage, strideTokens, windowExamples, type FittedExample } from '../../src/eval/heldout.ts';
import { makeTokenizer, randomWeights } from './helpers.ts';

const tok = makeTokenizer();
const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => ['cats', 'dogs', 'sky', 'blue', 'light', 'care', 'poem'][(i * 7 + seed) % 7]).join(' ');
const chat = (user: string, assistant: string): Turn[] => [
  { role: 'user', content: user },
  { role: 'assistant', content: assistant },
];

/** Positions (in the full encoding) each window scores; each window must be the slice it says it is. */
function scoredPositions(turns: Turn[], fitted: FittedExample): number[] {
  const full = encodeChat(tok, turns);
  const positions: number[] = [];
  for (const w of fitted.windows) {
    assert.deepEqual(w.ids, full.ids.slice(w.start, w.start + w.ids.length), `window ${w.window} is the slice at ${w.start}`);
    w.lossMask.forEach((m, i) => {
      if (m === 1) positions.push(w.start + i);
    });
  }
  return positions;
}

function answerPositions(turns: Turn[]): number[] {
  const full = encodeChat(tok, turns);
  const out: number[] = [];
  for (let t = 1; t < full.ids.length; t++) if (full.lossMask[t] === 1) out.push(t);
  return out;
}

test('a prompt longer than the window is cut from the left: its end and the assistant marker stay, the whole answer is scored', () => {
  const turns = chat(words(200, 1), 'the sky is blue.');
  const full = encodeChat(tok, turns);
  const L = 32;
  assert.ok(full.ids.length > 3 * L, 'the prompt alone overflows the window');
  const fitted = fitHeldout(tok, turns, L, 'disjoint');
  assert.equal(fitted.windows.length, 1);
  const w = fitted.windows[0]!;
  assert.equal(w.ids.length, L);
  assert.deepEqual(w.ids, full.ids.slice(full.ids.length - L), 'the last L tokens: the end of the prompt, the marker, the answer');
  assert.ok(w.ids.includes(tok.special.assistant));
  assert.equal(fitted.promptCut, true);
  assert.equal(fitted.answerTokens, answerPositions(turns).length);
  assert.equal(fitted.scoredTokens, fitted.answerTokens);
  assert.equal(w.bytes, Buffer.byteLength('the sky is blue.'));
  // Today's encodeChat(maxLength) keeps the start and scores nothing of this answer.
  const trimmed = encodeChat(tok, turns, L);
  assert.equal(trimmed.lossMask.reduce((a, b) => a + b, 0), 0);
});

test('an answer longer than the window is scored in rolling windows, each answer token exactly once', () => {
  const answer = words(150, 3);
  const turns = chat('why is the sky blue?', answer);
  const L = 24;
  const expected = answerPositions(turns);
  assert.ok(expected.length > 3 * L);
  for (const stride of ['disjoint', 16, 8, 1] as const) {
    const fitted = fitHeldout(tok, turns, L, stride);
    const s = strideTokens(stride, L);
    // After the first window, each one scores at most `stride` new tokens.
    assert.ok(fitted.windows.length >= 1 + Math.ceil((expected.length - (L - 1)) / s), `stride ${stride}: ${fitted.windows.length} windows`);
    for (const w of fitted.windows) {
      assert.ok(w.ids.length <= L);
      assert.equal(w.lossMask[0], 0, 'a window never scores its first token (nothing predicts it)');
      const scored = w.lossMask.reduce((a, b) => a + b, 0);
      assert.ok(scored >= 1 && scored <= Math.max(s, L - 1));
      // Every scored token sees at least L - stride tokens of context (the first window may see all before it).
      assert.ok(w.lossMask.indexOf(1) >= Math.min(L - s, w.lossMask.indexOf(1)));
      if (w.window > 0) assert.ok(w.lossMask.indexOf(1) >= L - s, `stride ${stride}, window ${w.window}: context ${w.lossMask.indexOf(1)}`);
    }
    const positions = scoredPositions(turns, fitted);
    assert.deepEqual([...positions].sort((a, b) => a - b), expected, `stride ${stride}: every answer token once`);
    assert.equal(fitted.scoredTokens, expected.length);
    assert.equal(fitted.windows.reduce((n, w) => n + w.bytes, 0), Buffer.byteLength(answer));
  }
  // Disjoint windows: each later window reads only the previous window's last token before its span.
  const disjoint = fitHeldout(tok, turns, L, 'disjoint');
  for (const w of disjoint.windows.slice(1, -1)) assert.equal(w.lossMask.indexOf(1), 1);
  // The answer's first token is scored given at least half the window of what precedes it.
  assert.ok(disjoint.windows[0]!.lossMask.indexOf(1) >= L / 2);
});

test('a long question before a long answer: the first window keeps half the window of the question end', () => {
  const turns = chat(words(120, 2), words(150, 4));
  const L = 32;
  const full = encodeChat(tok, turns);
  const firstAnswer = full.lossMask.indexOf(1);
  for (const [stride, kept] of [['disjoint', 16], [24, 16], [8, 24]] as const) {
    const fitted = fitHeldout(tok, turns, L, stride);
    const w = fitted.windows[0]!;
    assert.equal(w.start + w.ids.length - L, w.start, 'a full window');
    assert.equal(firstAnswer - w.start, kept, `stride ${stride}: ${kept} tokens before the first answer token`);
    assert.equal(w.ids[firstAnswer - w.start - 1], tok.special.assistant);
    assert.equal(fitted.promptCut, true);
    assert.deepEqual([...scoredPositions(turns, fitted)].sort((a, b) => a - b), answerPositions(turns));
  }
});

test('multi-turn conversations: every assistant turn scored once, user turns never', () => {
  const turns: Turn[] = [
    { role: 'user', content: words(30, 1) },
    { role: 'assistant', content: words(40, 2) },
    { role: 'user', content: words(50, 3) },
    { role: 'assistant', content: words(20, 4) },
  ];
  const full = encodeChat(tok, turns);
  const secondAnswer = answerPositions(turns).find((t) => full.lossMask[t - 1] !== 1 && t > full.lossMask.indexOf(1))!;
  for (const stride of ['disjoint', 5] as const) {
    const fitted = fitHeldout(tok, turns, 20, stride);
    assert.deepEqual([...scoredPositions(turns, fitted)].sort((a, b) => a - b), answerPositions(turns));
    // The second answer's first token is scored given the end of the second question.
    const w = fitted.windows.find((x) => x.start <= secondAnswer && secondAnswer < x.start + x.ids.length && x.lossMask[secondAnswer - x.start] === 1)!;
    assert.ok(secondAnswer - w.start >= 10, `stride ${stride}: ${secondAnswer - w.start} tokens of context`);
  }
});

test('a conversation that fits is one window identical to the plain encoding; bad settings and answerless records are errors', () => {
  const turns = chat('why is the sky blue?', 'light scatters in air.');
  const full = encodeChat(tok, turns);
  const fitted = fitHeldout(tok, turns, 64, 'disjoint');
  assert.equal(fitted.windows.length, 1);
  assert.deepEqual(fitted.windows[0]!.ids, full.ids);
  assert.deepEqual([...fitted.windows[0]!.lossMask], [...full.lossMask]);
  assert.equal(fitted.promptCut, false);
  assert.throws(() => fitHeldout(tok, [{ role: 'user', content: 'hello' }], 64, 'disjoint'), /no answer tokens to score/);
  assert.throws(() => fitHeldout(tok, turns, 64, 64), /expected "disjoint" or an integer in 1\.\.63/);
  assert.throws(() => fitHeldout(tok, turns, 64, 0), /expected "disjoint" or an integer/);
  assert.throws(() => fitHeldout(tok, turns, 1, 'disjoint'), /integer >= 2/);
});

test('coverage totals: answer tokens scored over answer tokens, cut prompts, multi-window answers', () => {
  const a = fitHeldout(tok, chat('short?', 'short answer.'), 32, 'disjoint');
  const b = fitHeldout(tok, chat(words(100, 1), 'ok.'), 32, 'disjoint');
  const c = fitHeldout(tok, chat('q?', words(100, 2)), 32, 'disjoint');
  const cov = heldoutCoverage([a, b, c]);
  assert.equal(cov.examples, 3);
  assert.equal(cov.answerTokens, a.answerTokens + b.answerTokens + c.answerTokens);
  assert.equal(cov.scoredTokens, cov.answerTokens);
  assert.equal(cov.coverage, 1);
  // b's long prompt is cut; c's short one is read whole before its long answer.
  assert.equal(cov.promptCut, 1);
  assert.equal(c.windows[0]!.start, 0);
  assert.equal(cov.multiWindow, 1);
  assert.equal(cov.windows, 1 + 1 + c.windows.length);
});

test('windows sum to the NLL of one pass when everything fits, whatever the stride; padding changes nothing', async () => {
  const model: ModelConfig = { vocab: tok.vocabSize, context: 64, dModel: 32, layers: 2, heads: 4 };
  const session = await DecoderSession.create(exportOnnxBytes(model, randomWeights(model, 5, 0.3)), model, { threads: 1 });
  const turns = chat('why is the sky blue?', words(12, 5));
  const full = encodeChat(tok, turns);
  assert.ok(full.ids.length <= 64);
  const [onePass] = await scoreBatch(session, [{ id: 'x', ids: full.ids, lossMask: full.lossMask, bytes: full.responseBytes }]);
  for (const stride of ['disjoint', 7, 3, 1] as const) {
    // Window = the model's context, so every window reads everything before its span.
    const fitted = fitHeldout(tok, turns, 64, stride);
    const examples: ScoringExample[] = windowExamples('x', fitted);
    const scores = await scoreBatch(session, examples);
    const nll = scores.reduce((n, s) => n + s.nll, 0);
    const tokens = scores.reduce((n, s) => n + s.tokens, 0);
    assert.equal(tokens, onePass!.tokens);
    assert.ok(Math.abs(nll - onePass!.nll) < 1e-4 * Math.max(1, onePass!.nll), `stride ${stride}: ${nll} vs ${onePass!.nll}`);
    // Each window scored alone gives what it gave in the padded batch.
    for (const [i, ex] of examples.entries()) {
      const [alone] = await scoreBatch(session, [ex]);
      assert.ok(Math.abs(alone!.nll - scores[i]!.nll) < 1e-5);
    }
  }
  // With a smaller window the prompt is cut and context shrinks, so the NLL differs from one pass.
  const cut = windowExamples('x', fitHeldout(tok, turns, 12, 'disjoint'));
  const cutNll = (await scoreBatch(session, cut)).reduce((n, s) => n + s.nll, 0);
  assert.ok(Math.abs(cutNll - onePass!.nll) > 1e-3);
  await session.release();
});

test('plain text windows (fitText): every token after the first scored exactly once, by the same rule', () => {
  const ids = Array.from({ length: 100 }, (_, i) => 5 + (i % 50));
  for (const [L, stride] of [[16, 'disjoint'], [16, 4], [100, 'disjoint'], [200, 'disjoint']] as const) {
    const windows = fitText(ids, () => 2, Math.min(L, 200), stride);
    const scored: number[] = [];
    for (const w of windows) {
      assert.ok(w.ids.length <= L);
      assert.deepEqual(w.ids, ids.slice(w.start, w.start + w.ids.length));
      assert.equal(w.lossMask[0], 0);
      w.lossMask.forEach((m, i) => m === 1 && scored.push(w.start + i));
      assert.equal(w.bytes, 2 * w.lossMask.reduce((a, b) => a + b, 0));
    }
    assert.deepEqual(scored, Array.from({ length: 99 }, (_, i) => i + 1), `L ${L}, stride ${stride}`);
    // Later windows read only the previous window's last token (disjoint) or L - stride tokens
    // before their span; the last one reads a full window of context.
    const middle = windows.slice(1, -1);
    for (const w of middle) assert.equal(w.lossMask.indexOf(1), stride === 'disjoint' ? 1 : L - stride);
    if (windows.length > 1) assert.equal(windows.at(-1)!.ids.length, Math.min(L, ids.length));
  }
  assert.equal(fitText(ids, () => 1, 16, 'disjoint').length, 1 + Math.ceil((99 - 15) / 15));
  assert.throws(() => fitText([7], () => 1, 16, 'disjoint'), /text of 1 token\(s\): nothing to score/);
});
