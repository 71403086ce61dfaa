// node-llama-cpp (llama.cpp's own C++ inference, prebuilt CPU binaries from npm) as an
// independent reference for GGUF models: tokenization, greedy continuations with per-step
// log-probabilities, and log-probabilities of given token sequences. Test-only (a devDependency).
//
// API (all async; every function loads the model once per call through `withLlamaCpp`, or reuse
// one `LlamaCppReference` for several calls and `dispose()` it):
//   openLlamaCpp(ggufPath, {contextSize?}) -> LlamaCppReference
//   ref.tokenize(text)                     ids without BOS, as llama_tokenize(text, add_special=false,
//                                          parse_special=false) (node-llama-cpp model.tokenize(text))
//   ref.bos                                the BOS id (model.tokens.bos) or null
//   ref.greedy(promptIds, maxNewTokens)    {tokens, logprobs, distributions, text}: greedy (argmax)
//                                          continuation, log p of each chosen token, full next-token
//                                          log-prob rows (Float32Array of vocab) when asked
//   ref.score(ids)                         log p(ids[i] | ids[<i]) for i = 1..n-1 (n-1 numbers)
//   ref.dispose()
// The prompt ids are used as given: prepend ref.bos yourself when the model expects it (llama.cpp
// does for SentencePiece llama models: tokenizer.ggml.add_bos_token).
//
// node-llama-cpp 3.21.1 calls used: getLlama({gpu: false, build: 'never', skipDownload: true, logLevel}) (prebuilt CPU
// binary; `build: 'never'` makes it throw instead of compiling or downloading llama.cpp),
// llama.loadModel({modelPath}), model.createContext({contextSize, batchSize, threads: 1, sequences: 1,
// flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32'})
// (a float32 KV cache: llama.cpp's default float16 cache moves log-probs by up to ~2e-3),
// context.getSequence(), sequence.evaluateWithMetadata(ids, {probabilities: true}, {temperature: 0})
// (greedy; the probabilities are the full softmax of the logits since greedy applies no top-k /
// top-p, checked: 512 entries summing to 1), sequence.controlledEvaluate([...ids with
// {generateNext: {probabilities: true}} on each]) for scoring, sequence.clearHistory(),
// model.tokenize / model.detokenize, model.tokens.bos, dispose().
// Probabilities come back as float32 values turned into JS numbers; log-probs are Math.log of
// them (a probability below ~1e-45 underflows to 0 and gives -Infinity).
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from 'node-llama-cpp';

export interface GreedyResult {
  /** Generated token ids (exactly maxNewTokens unless EOS came first; EOS is included then). */
  tokens: number[];
  /** log p(tokens[i] | prompt, tokens[<i]) under llama.cpp's logits (natural log). */
  logprobs: number[];
  /** Full next-token log-prob row (length vocab) per generated position when `distributions` was asked, else []. */
  distributions: Float32Array[];
  /** detokenize(tokens). */
  text: string;
}

export interface LlamaCppReference {
  readonly bos: number | null;
  readonly eos: number | null;
  readonly vocab: number;
  tokenize(text: string): number[];
  detokenize(ids: number[]): string;
  greedy(promptIds: number[], maxNewTokens: number, options?: { distributions?: boolean }): Promise<GreedyResult>;
  score(ids: number[]): Promise<number[]>;
  dispose(): Promise<void>;
}

let llamaPromise: Promise<Llama> | undefined;

/** The prebuilt CPU llama.cpp binding (shared by every reference in the process). Never builds or downloads. */
function llama(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: 'never', skipDownload: true, logLevel: LlamaLogLevel.error, progressLogs: false });
  return llamaPromise;
}

/**
 * Loads `ggufPath` in node-llama-cpp with one sequence of `contextSize` tokens (default 512,
 * must hold prompt + generated tokens; no context shift is relied on) on 1 thread.
 */
export async function openLlamaCpp(ggufPath: string, options: { contextSize?: number } = {}): Promise<LlamaCppReference> {
  const contextSize = options.contextSize ?? 512;
  const model: LlamaModel = await (await llama()).loadModel({ modelPath: ggufPath });
  // float32 KV cache (llama.cpp's default is float16, which moves log-probs by ~1e-3) and no flash attention.
  const context: LlamaContext = await model.createContext({
    contextSize,
    batchSize: contextSize,
    threads: 1,
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  const sequence: LlamaContextSequence = context.getSequence();
  const tokenList = (model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly string[] } } }).tokenizer?.ggml?.tokens;
  if (!tokenList) throw new Error(`${ggufPath}: node-llama-cpp found no tokenizer.ggml.tokens`);
  const vocab = tokenList.length;
  const check = (ids: number[], extra: number) => {
    if (ids.length === 0) throw new Error('llama-cpp-reference: empty token list');
    if (ids.length + extra > contextSize) throw new Error(`llama-cpp-reference: ${ids.length} + ${extra} tokens exceed the context of ${contextSize}`);
  };
  const row = (probabilities: Map<Token, number>): Float32Array => {
    const out = new Float32Array(vocab).fill(-Infinity);
    for (const [t, p] of probabilities) out[t] = Math.log(p);
    return out;
  };
  return {
    bos: model.tokens.bos ?? null,
    eos: model.tokens.eos ?? null,
    vocab,
    tokenize: (text) => [...model.tokenize(text)].map(Number),
    detokenize: (ids) => model.detokenize(ids as Token[]),
    async greedy(promptIds, maxNewTokens, opts = {}) {
      check(promptIds, maxNewTokens);
      await sequence.clearHistory();
      const tokens: number[] = [];
      const logprobs: number[] = [];
      const distributions: Float32Array[] = [];
      const it = sequence.evaluateWithMetadata(promptIds as Token[], { probabilities: true }, { temperature: 0, yieldEogToken: true });
      for await (const out of it) {
        const p = out.probabilities.get(out.token);
        if (p === undefined) throw new Error(`llama-cpp-reference: no probability for the chosen token ${out.token}`);
        tokens.push(out.token);
        logprobs.push(Math.log(p));
        if (opts.distributions) distributions.push(row(out.probabilities));
        if (tokens.length >= maxNewTokens || out.token === model.tokens.eos) break;
      }
      return { tokens, logprobs, distributions, text: model.detokenize(tokens as Token[]) };
    },
    async score(ids) {
      check(ids, 0);
      await sequence.clearHistory();
      const input = ids.map((t, i) => (i < ids.length - 1 ? ([t, { generateNext: { probabilities: true } }] as [Token, { generateNext: { probabilities: boolean } }]) : (t as Token)));
      const result = await sequence.controlledEvaluate(input);
      const out: number[] = [];
      for (let i = 0; i < ids.length - 1; i++) {
        const p = result[i]?.next.probabilities?.get(ids[i + 1] as Token);
        out.push(p === undefined ? -Infinity : Math.log(p));
      }
      return out;
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}

/** Opens a reference, runs `fn`, disposes it (also on error). */
export async function withLlamaCpp<T>(ggufPath: string, fn: (ref: LlamaCppReference) => Promise<T>, options: { contextSize?: number } = {}): Promise<T> {
  const ref = await openLlamaCpp(ggufPath, options);
  try {
    return await fn(ref);
  } finally {
    await ref.dispose();
  }
}

/** Greedy continuation of `promptIds` (>= 1 token; prepend BOS yourself) in node-llama-cpp. */
export async function llamaCppGreedy(ggufPath: string, promptIds: number[], maxNewTokens = 64, options: { distributions?: boolean } = {}): Promise<GreedyResult> {
  return withLlamaCpp(ggufPath, (ref) => ref.greedy(promptIds, maxNewTokens, options), { contextSize: Math.max(512, promptIds.length + maxNewTokens) });
}
