// Model shape. Shared by the tfjs model (training), the ONNX exporters and the evaluators.
//
// Two architectures: 'gpt2' (our own GPT, src/model/weights.ts; the default when `arch` is
// absent, so every existing config serialises and hashes as before) and 'llama' (RMSNorm,
// rotary embeddings, SwiGLU, grouped-query attention: Llama, Mistral-style and TinyLlama
// checkpoints read from elsewhere; evaluated only, never trained here).
export interface ModelConfig {
  /** 'gpt2' when absent (every existing checkpoint and config). */
  arch?: 'gpt2' | 'llama';
  /** Vocabulary size (tokenizer's, including special tokens). */
  vocab: number;
  /** Maximum sequence length (learned position embeddings for gpt2, RoPE table size for llama). */
  context: number;
  dModel: number;
  layers: number;
  /** Query heads. */
  heads: number;
  // llama only (kvHeads and ffnHidden required when arch === 'llama'):
  /** Key/value heads (grouped-query attention): heads % kvHeads === 0. */
  kvHeads?: number;
  /** Per-head width; default dModel / heads. Must be even (rotary pairs). */
  headDim?: number;
  /** SwiGLU hidden size. */
  ffnHidden?: number;
  /** RoPE base; default 10000. */
  ropeTheta?: number;
  /** RMSNorm epsilon; default 1e-5. */
  normEps?: number;
  /** Output head is tok_embeddings (no `output` tensor); default false. */
  tiedEmbeddings?: boolean;
}

export const DEFAULT_ROPE_THETA = 10000;
export const DEFAULT_RMS_NORM_EPS = 1e-5;

const LLAMA_KEYS = ['kvHeads', 'headDim', 'ffnHidden', 'ropeTheta', 'normEps', 'tiedEmbeddings'] as const;

/** A llama config with every default filled in. */
export interface LlamaDims {
  kvHeads: number;
  headDim: number;
  ffnHidden: number;
  ropeTheta: number;
  normEps: number;
  tiedEmbeddings: boolean;
}

/** The llama fields of `c` with defaults applied (call after validateModelConfig). */
export function llamaDims(c: ModelConfig): LlamaDims {
  return {
    kvHeads: c.kvHeads ?? c.heads,
    headDim: c.headDim ?? c.dModel / c.heads,
    ffnHidden: c.ffnHidden ?? 0,
    ropeTheta: c.ropeTheta ?? DEFAULT_ROPE_THETA,
    normEps: c.normEps ?? DEFAULT_RMS_NORM_EPS,
    tiedEmbeddings: c.tiedEmbeddings ?? false,
  };
}

/** KV cache layout [batch, cacheHeads, length, headDim]: heads and dModel/heads for gpt2, kvHeads and headDim for llama. */
export function cacheDims(c: ModelConfig): { cacheHeads: number; headDim: number } {
  if (c.arch === 'llama') {
    const l = llamaDims(c);
    return { cacheHeads: l.kvHeads, headDim: l.headDim };
  }
  return { cacheHeads: c.heads, headDim: c.dModel / c.heads };
}

/**
 * The config as its weights hash sees it: gpt2 configs unchanged (an explicit arch "gpt2" dropped,
 * as absent means gpt2); llama configs with every
 * default filled in and ropeTheta/normEps rounded to float32 (what the graph computes with), so
 * the same model read from config.json (rms_norm_eps 1e-5) and from GGUF (a float32 1e-5) hashes alike.
 */
export function canonicalModelConfig(c: ModelConfig): ModelConfig {
  if (c.arch === 'gpt2') {
    const { arch: _gpt2, ...rest } = c;
    return rest;
  }
  if (c.arch !== 'llama') return c;
  const l = llamaDims(c);
  return { arch: 'llama', vocab: c.vocab, context: c.context, dModel: c.dModel, layers: c.layers, heads: c.heads, ...l, ropeTheta: Math.fround(l.ropeTheta), normEps: Math.fround(l.normEps) };
}

/** Throws a clear message (`<where>.<field> ...`) for a shape that cannot work, before any work is done. */
export function validateModelConfig(config: ModelConfig, where = 'model'): void {
  const intKeys: Array<keyof ModelConfig> = ['vocab', 'context', 'dModel', 'layers', 'heads'];
  const positiveInt = (key: keyof ModelConfig): void => {
    const value = config[key];
    if (!Number.isInteger(value) || (value as number) <= 0) {
      throw new Error(`${where}.${key} must be a positive integer, got ${JSON.stringify(value)}`);
    }
  };
  for (const key of intKeys) positiveInt(key);
  const arch = config.arch;
  if (arch !== undefined && arch !== 'gpt2' && arch !== 'llama') throw new Error(`${where}.arch must be "gpt2" or "llama", got ${JSON.stringify(arch)}`);
  if (arch !== 'llama') {
    for (const key of LLAMA_KEYS) {
      if (config[key] !== undefined) throw new Error(`${where}.${key} applies only to arch "llama" (this config is gpt2)`);
    }
    if (config.dModel % config.heads !== 0) {
      throw new Error(`${where}.heads (${config.heads}) must divide ${where}.dModel (${config.dModel})`);
    }
    return;
  }
  positiveInt('kvHeads');
  positiveInt('ffnHidden');
  if (config.headDim !== undefined) positiveInt('headDim');
  else if (config.dModel % config.heads !== 0) {
    throw new Error(`${where}.heads (${config.heads}) must divide ${where}.dModel (${config.dModel}) when ${where}.headDim is not given`);
  }
  if (config.heads % config.kvHeads! !== 0) throw new Error(`${where}.kvHeads (${config.kvHeads}) must divide ${where}.heads (${config.heads})`);
  const headDim = llamaDims(config).headDim;
  if (headDim % 2 !== 0) throw new Error(`${where}.headDim (${headDim}) must be even (rotary embeddings rotate pairs)`);
  for (const key of ['ropeTheta', 'normEps'] as const) {
    const v = config[key];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new Error(`${where}.${key} must be a positive number, got ${JSON.stringify(v)}`);
  }
  if (config.tiedEmbeddings !== undefined && typeof config.tiedEmbeddings !== 'boolean') {
    throw new Error(`${where}.tiedEmbeddings must be true or false, got ${JSON.stringify(config.tiedEmbeddings)}`);
  }
}

/** Parameter count: the GPT decoder (output tied to the token embedding), or the llama decoder (no biases). */
export function countParams(c: ModelConfig): number {
  const d = c.dModel;
  if (c.arch === 'llama') {
    const l = llamaDims(c);
    const q = c.heads * l.headDim;
    const kv = l.kvHeads * l.headDim;
    const perLayer = 2 * d /* norms */ + d * q + 2 * d * kv + q * d /* attention */ + 3 * d * l.ffnHidden; /* SwiGLU */
    return c.vocab * d * (l.tiedEmbeddings ? 1 : 2) + c.layers * perLayer + d;
  }
  const perLayer = 2 * d /* ln1 */ + d * 3 * d + 3 * d /* qkv */ + d * d + d /* out */ + 2 * d /* ln2 */ + d * 4 * d + 4 * d + 4 * d * d + d; /* mlp */
  return c.vocab * d + c.context * d + c.layers * perLayer + 2 * d;
}
