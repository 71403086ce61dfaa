// Fitting held-out conversations into the model's context for scoring, as evaluation harnesses
// do: every answer token is scored exactly once, the prompt is cut from the left (its end and the
// assistant marker are kept), and an answer longer than the window is scored in rolling windows.
//
// Window rule: a window scores the answer tokens from `p` (the first one not yet scored) up to
// `end = min(N, max(L, p + span))` and reads the L tokens before `end` (from position 0 when
// end <= L).
// - Within an answer, span = stride, so every scored token sees at least L - stride tokens of
//   context, or everything before it. stride = L - 1 ("disjoint", the default) is
//   lm-evaluation-harness's loglikelihood_rolling: spans are disjoint and each window reads only
//   the previous window's last token before its own span (in a graph that predicts token t from
//   tokens < t, L inputs score L - 1 tokens). A smaller stride is Hugging Face's strided sliding
//   window ("Perplexity of fixed-length models"): more context, about L / stride times the cost.
// - Where an answer starts (after its prompt, or after a later user turn), the window keeps at
//   least max(L - stride, L / 2) tokens of what comes before it (all of it when shorter), so the
//   first answer tokens are always scored given the end of their question, never given only the
//   assistant marker.
// Training keeps its own trimming (encodeChat with maxLength keeps the start).
import type { Turn } from '../data/types.ts';
import type { BpeTokenizer } from '../data/tokenizer.ts';
import { asEvalTokenizer, type EvalTokenizer } from './eval-tokenizer.ts';
import type { ScoringExample } from './scoring.ts';

/** How held-out examples are fitted: `disjoint` or a number of new tokens scored per window. */
export type Stride = 'disjoint' | number;

/** Bumped when the window rule changes, so stored results made under the old rule are recomputed. */
export const HELDOUT_FIT_VERSION = 2;

export interface HeldoutWindow {
  /** 0-based window index within its example. */
  window: number;
  /** Position of ids[0] in the whole conversation's encoding. */
  start: number;
  ids: number[];
  /** 1 = ids[t] is scored in this window (predicted from ids[0..t-1]). */
  lossMask: Uint8Array;
  /** UTF-8 bytes of the answer text scored in this window (special tokens count 0). */
  bytes: number;
}

export interface FittedExample {
  windows: HeldoutWindow[];
  /** Answer tokens of the whole conversation (the assistant's content tokens and its end-of-turn). */
  answerTokens: number;
  /** Answer tokens scored, summed over windows (equals answerTokens: each exactly once). */
  scoredTokens: number;
  /** True when the first window does not start at position 0: the prompt lost its beginning. */
  promptCut: boolean;
}

/** The stride in tokens for a window of `length` tokens (validated: 1 <= stride <= length - 1). */
export function strideTokens(stride: Stride, length: number): number {
  const s = stride === 'disjoint' ? length - 1 : stride;
  if (!Number.isInteger(s) || s < 1 || s > length - 1) {
    throw new RangeError(`held-out stride ${JSON.stringify(stride)}: expected "disjoint" or an integer in 1..${length - 1} (window ${length} tokens)`);
  }
  return s;
}

/**
 * Splits one held-out conversation into scoring windows of at most `length` tokens, encoded by
 * `tokenizer`'s encodeChat (a BpeTokenizer: our chat format, src/data/chat-format.ts).
 * Shapes: each window's ids.length <= length; the windows' scored positions partition the
 * conversation's answer tokens. Throws (naming nothing but the cause; callers add the record) when
 * the conversation has no answer token to score, or on a bad length or stride.
 */
export function fitHeldout(tokenizer: BpeTokenizer | EvalTokenizer, turns: Turn[], length: number, stride: Stride): FittedExample {
  if (!Number.isInteger(length) || length < 2) throw new RangeError(`held-out window: expected an integer >= 2 tokens, got ${length}`);
  const step = strideTokens(stride, length);
  const tok = asEvalTokenizer(tokenizer);
  const full = tok.encodeChat(turns);
  const n = full.ids.length;
  const targets: number[] = [];
  for (let t = 1; t < n; t++) if (full.lossMask[t] === 1) targets.push(t);
  if (targets.length === 0) throw new Error('no answer tokens to score (the conversation has no assistant turn)');

  // Context kept before the start of an answer: L - stride, and at least half the window.
  const answerContext = Math.max(length - step, Math.floor(length / 2));
  const windows: HeldoutWindow[] = [];
  let k = 0; // next target (index into targets) to score
  let firstStart = 0;
  while (k < targets.length) {
    const p = targets[k]!;
    const startsAnswer = full.lossMask[p - 1] !== 1;
    const span = startsAnswer ? length - Math.min(p, answerContext) : step;
    const end = Math.min(n, Math.max(p + span, length));
    const start = Math.max(0, end - length);
    if (windows.length === 0) firstStart = start;
    const ids = full.ids.slice(start, end);
    const lossMask = new Uint8Array(ids.length);
    let bytes = 0;
    for (; k < targets.length && targets[k]! < end; k++) {
      const t = targets[k]!;
      lossMask[t - start] = 1;
      bytes += full.tokenBytes ? full.tokenBytes[t]! : tok.tokenByteLength(full.ids[t]!);
    }
    windows.push({ window: windows.length, start, ids, lossMask, bytes });
  }
  let scoredTokens = 0;
  for (const w of windows) for (const m of w.lossMask) scoredTokens += m;
  return { windows, answerTokens: targets.length, scoredTokens, promptCut: firstStart > 0 };
}

export interface HeldoutCoverage {
  examples: number;
  /** Answer tokens in the held-out set (whole conversations, before fitting). */
  answerTokens: number;
  /** Answer tokens scored; answerTokens when every token is scored exactly once. */
  scoredTokens: number;
  /** scoredTokens / answerTokens. */
  coverage: number;
  /** Examples whose prompt lost its beginning to fit the window. */
  promptCut: number;
  /** Examples whose answer needed more than one window. */
  multiWindow: number;
  windows: number;
}

/** Coverage with the window and stride it was measured at (metrics.json's `heldoutCoverage`). */
export type HeldoutFit = HeldoutCoverage & {
  /** Scoring window, tokens. */
  window: number;
  /** Answer tokens newly scored per window. */
  stride: number;
};

/** Totals over fitted examples (the coverage reported in metrics.json). */
export function heldoutCoverage(fitted: readonly FittedExample[]): HeldoutCoverage {
  let answerTokens = 0;
  let scoredTokens = 0;
  let promptCut = 0;
  let multiWindow = 0;
  let windows = 0;
  for (const f of fitted) {
    answerTokens += f.answerTokens;
    scoredTokens += f.scoredTokens;
    if (f.promptCut) promptCut++;
    if (f.windows.length > 1) multiWindow++;
    windows += f.windows.length;
  }
  return { examples: fitted.length, answerTokens, scoredTokens, coverage: answerTokens > 0 ? scoredTokens / answerTokens : NaN, promptCut, multiWindow, windows };
}

/** The scoring examples of one held-out record's windows; ids are `<recordId>#<window>`. */
export function windowExamples(recordId: string, fitted: FittedExample): Array<ScoringExample & { exampleId: string; window: number }> {
  return fitted.windows.map((w) => ({ id: `${recordId}#${w.window}`, exampleId: recordId, window: w.window, ids: w.ids, lossMask: w.lossMask, bytes: w.bytes }));
}

/**
 * Plain text (a whole file's ids) in scoring windows by the same window rule as fitHeldout:
 * every token after the first is scored exactly once; a window reads at most `length` tokens and
 * scores up to `stride` new ones after the first window (disjoint: length - 1, each later window
 * reads only the previous window's last token before its own span). `tokenBytes(id, position)`
 * gives the UTF-8 bytes the token ids[position] stands for (each window's `bytes` sums its scored
 * tokens').
 * Throws on fewer than 2 ids (nothing to score) or a bad length or stride.
 */
export function fitText(ids: readonly number[], tokenBytes: (id: number, position: number) => number, length: number, stride: Stride): HeldoutWindow[] {
  if (!Number.isInteger(length) || length < 2) throw new RangeError(`text window: expected an integer >= 2 tokens, got ${length}`);
  const step = strideTokens(stride, length);
  const n = ids.length;
  if (n < 2) throw new Error(`text of ${n} token(s): nothing to score (the first token has no context)`);
  const windows: HeldoutWindow[] = [];
  let p = 1; // next position to score
  while (p < n) {
    const end = Math.min(n, Math.max(p + step, length));
    const start = Math.max(0, end - length);
    const windowIds = ids.slice(start, end);
    const lossMask = new Uint8Array(windowIds.length);
    let bytes = 0;
    for (; p < end; p++) {
      lossMask[p - start] = 1;
      bytes += tokenBytes(ids[p]!, p);
    }
    windows.push({ window: windows.length, start, ids: windowIds, lossMask, bytes });
  }
  return windows;
}
