// Held-out scoring: summed negative log-likelihood of the response tokens (the prompt is
// context), in length-bucketed, right-padded batches. Padding cannot change a result: padded
// keys are masked out and padded positions are never targets.
import type { DecoderSession } from './session.ts';

export interface ScoringExample {
  id: string;
  ids: readonly number[];
  /** 1 = ids[t] is a target predicted from ids[0..t-1] (chat-format's lossMask). */
  lossMask: ArrayLike<number>;
  /** UTF-8 bytes of the scored response text. */
  bytes: number;
}

export interface ExampleScore {
  id: string;
  /** Sum over target tokens of -ln p(token | prefix). */
  nll: number;
  tokens: number;
  bytes: number;
}

/**
 * Groups examples into batches of at most `batchTokens` padded tokens (a single longer example
 * still gets its own batch). Longest first, so similar lengths share a batch and little is padding.
 * Deterministic: ties keep input order.
 */
export function planBatches<T extends { ids: readonly number[] }>(examples: readonly T[], batchTokens: number): T[][] {
  const order = examples.map((e, i) => ({ e, i })).sort((a, b) => b.e.ids.length - a.e.ids.length || a.i - b.i);
  const batches: T[][] = [];
  let current: T[] = [];
  let width = 0;
  for (const { e } of order) {
    if (current.length > 0 && (current.length + 1) * width > batchTokens) {
      batches.push(current);
      current = [];
    }
    if (current.length === 0) width = e.ids.length;
    current.push(e);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** -ln softmax(row)[target] for one logits row, with a float64 log-sum-exp. */
export function negLogProb(logits: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) {
    const x = logits[offset + v]!;
    if (x > max) max = x;
  }
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v]! - max);
  return Math.log(sum) + max - logits[offset + target]!;
}

/** Per example: the sum of `nllAt(b, t, token)` over its target positions t, and their count. */
function sumOverTargets(batch: readonly ScoringExample[], nllAt: (b: number, t: number, token: number) => number): ExampleScore[] {
  return batch.map((ex, b) => {
    let nll = 0;
    let tokens = 0;
    for (let t = 1; t < ex.ids.length; t++) {
      if (ex.lossMask[t] !== 1) continue;
      nll += nllAt(b, t, ex.ids[t]!);
      tokens++;
    }
    return { id: ex.id, nll, tokens, bytes: ex.bytes };
  });
}

/**
 * NLL per example from [batch, width, vocab] logits of right-padded rows, with a float64 softmax
 * in JS: the reference that the graph's token_logprobs are tested against.
 */
export function nllFromLogits(logits: Float32Array, batch: readonly ScoringExample[], width: number, vocab: number): ExampleScore[] {
  return sumOverTargets(batch, (b, t, token) => negLogProb(logits, (b * width + t - 1) * vocab, vocab, token));
}

/** NLL per example from the graph's [batch, width-1] next-token log-probabilities. */
export function nllFromTokenLogprobs(tokenLogprobs: Float32Array, batch: readonly ScoringExample[], width: number): ExampleScore[] {
  return sumOverTargets(batch, (b, t) => -tokenLogprobs[b * (width - 1) + t - 1]!);
}

/** Scores one batch in one forward pass (right padding, attention mask 0 on padding). */
export async function scoreBatch(session: DecoderSession, batch: readonly ScoringExample[]): Promise<ExampleScore[]> {
  const { context } = session.model;
  for (const ex of batch) {
    if (ex.ids.length > context) throw new Error(`example ${ex.id}: ${ex.ids.length} tokens exceed the model context ${context}`);
  }
  const width = Math.max(...batch.map((ex) => ex.ids.length));
  const mask = batch.map((ex) => Array.from({ length: width }, (_, t) => (t < ex.ids.length ? 1 : 0)));
  const positions = batch.map(() => Array.from({ length: width }, (_, t) => t));
  const tokenLogprobs = await session.tokenLogprobs(batch.map((ex) => ex.ids), mask, positions);
  return nllFromTokenLogprobs(tokenLogprobs, batch, width);
}

export interface PerplexitySummary {
  nll: number;
  tokens: number;
  bytes: number;
  /** exp(sum NLL / sum tokens) */
  perplexity: number;
  /** sum NLL / ln 2 / sum bytes */
  bitsPerByte: number;
}

export function summarizeScores(scores: ReadonlyArray<{ nll: number; tokens: number; bytes: number }>): PerplexitySummary {
  let nll = 0;
  let tokens = 0;
  let bytes = 0;
  for (const s of scores) {
    nll += s.nll;
    tokens += s.tokens;
    bytes += s.bytes;
  }
  return { nll, tokens, bytes, perplexity: tokens > 0 ? Math.exp(nll / tokens) : NaN, bitsPerByte: bytes > 0 ? nll / Math.LN2 / bytes : NaN };
}
