// Perplexity of a plain text under one checkpoint (the `perplexity` command): the text is
// tokenized whole (EvalTokenizer.encodeText: no BOS for our models, which have none; a foreign
// tokenizer's BOS when its post-processor adds one, so every text token is then scored), every
// token after the first is scored once, in windows of the model's context by heldout.ts's window rule (fitText; disjoint by default, as
// lm-evaluation-harness's loglikelihood_rolling), batched and scored with the ONNX graph's
// token log-probs exactly as held-out scoring does (scoring.ts).
import type { ModelConfig } from '../model/config.ts';
import type { NamedWeights } from '../model/weights.ts';
import { exportOnnxBytes } from '../model/onnx-export.ts';
import type { BpeTokenizer } from '../data/tokenizer.ts';
import { asEvalTokenizer, type EvalTokenizer } from './eval-tokenizer.ts';
import { fitText, type Stride } from './heldout.ts';
import { DecoderSession } from './session.ts';
import { planBatches, scoreBatch, summarizeScores, type ScoringExample } from './scoring.ts';

export interface TextPerplexity {
  /** Tokens scored: all of the encoded text's tokens but the first (a BOS, when the tokenizer adds one). */
  tokens: number;
  /** Summed negative log-likelihood of the scored tokens, nats. */
  nll: number;
  /** exp(nll / tokens). */
  perplexity: number;
  /**
   * nll / ln 2 / bytes, where bytes = UTF-8 bytes of the text the scored tokens stand for: the
   * whole text's UTF-8 length when the tokenizer adds a BOS (every text token scored), else the
   * text's bytes minus the first token's (EvalTokenizer.textTokenBytes / tokenByteLength).
   */
  bitsPerByte: number;
  bytes: number;
  /** Scoring windows used. */
  windows: number;
  /** Window length, tokens (the model's context unless given). */
  window: number;
}

export interface TextPerplexityOptions {
  /** Window length in tokens, 2..context (default the model's context). */
  window?: number;
  /** Default 'disjoint'. */
  stride?: Stride;
  /** onnxruntime intra-op threads (default 1). */
  threads?: number;
  /** Padded tokens per scoring batch (default 8 windows of the full length). */
  batchTokens?: number;
}

/** Scores `text` under (model, weights) tokenized by `tokenizer`. Throws on text of fewer than 2 tokens. */
export async function textPerplexity(model: ModelConfig, weights: NamedWeights, tokenizer: BpeTokenizer | EvalTokenizer, text: string, options: TextPerplexityOptions = {}): Promise<TextPerplexity> {
  const tok = asEvalTokenizer(tokenizer);
  const window = options.window ?? model.context;
  if (!Number.isInteger(window) || window < 2 || window > model.context) throw new RangeError(`window: expected an integer in 2..${model.context} (the model's context), got ${window}`);
  if (tok.vocabSize > model.vocab) throw new Error(`the tokenizer has ${tok.vocabSize} tokens, the model's vocabulary only ${model.vocab}`);
  const ids = tok.encodeText(text);
  // A foreign tokenizer's per-token bytes sum to the text's UTF-8 length (a SentencePiece
  // dummy-prefix "▁" is not a byte of the text); ours are tokenByteLength, exact.
  const tokenBytes = tok.textTokenBytes?.(text, ids);
  const windows = fitText(ids, (id, p) => (tokenBytes ? tokenBytes[p]! : tok.tokenByteLength(id)), window, options.stride ?? 'disjoint');
  const examples: ScoringExample[] = windows.map((w) => ({ id: String(w.window), ids: w.ids, lossMask: w.lossMask, bytes: w.bytes }));
  const session = await DecoderSession.create(exportOnnxBytes(model, weights), model, { threads: options.threads ?? 1 });
  try {
    const scores = [];
    for (const batch of planBatches(examples, options.batchTokens ?? 8 * window)) scores.push(...(await scoreBatch(session, batch)));
    const s = summarizeScores(scores);
    return { tokens: s.tokens, nll: s.nll, perplexity: s.perplexity, bitsPerByte: s.bitsPerByte, bytes: s.bytes, windows: windows.length, window };
  } finally {
    await session.release();
  }
}
