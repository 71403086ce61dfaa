// A small random llama written as a GGUF file (tests/helpers/gguf-writer.ts), with a tiny
// SentencePiece-like vocabulary that encodes any text: <unk> <s> </s>, the 256 byte-fallback
// tokens <0x00>..<0xFF>, "▁", the lowercase letters and a few common pieces. For series and CLI
// tests that need GGUF checkpoints; the weights are seeded, so a seed is a checkpoint.
import { encodeGguf, f32Bytes, T, type MetaEntry, type TensorEntry } from './gguf-writer.ts';

const PIECES = ['▁', ...'abcdefghijklmnopqrstuvwxyz'.split(''), 'th', '▁t', '▁th', 'he', '▁the', 'in', '▁a', 'an', 'er', 'on'];

/** Token strings of the fixture vocabulary (id = index). */
export const TINY_SPM_TOKENS: readonly string[] = [
  '<unk>',
  '<s>',
  '</s>',
  ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`),
  ...PIECES,
];

export interface TinyLlamaShape {
  /** Context length in tokens (default 64). */
  context?: number;
  /** Model width (default 16), heads (default 2), key/value heads (default 1), layers (default 1), feed-forward size (default 24). */
  dModel?: number;
  heads?: number;
  kvHeads?: number;
  layers?: number;
  ffn?: number;
}

/**
 * GGUF v3 bytes of a random llama (float32 tensors, untied output) seeded by `seed`, weights
 * uniform in [-scale, scale); `extraMeta` appended to the metadata (e.g. tokenizer.chat_template).
 */
export function tinyLlamaGguf(seed: number, shape: TinyLlamaShape = {}, scale = 0.3, extraMeta: MetaEntry[] = []): Uint8Array {
  const d = shape.dModel ?? 16, heads = shape.heads ?? 2, kvHeads = shape.kvHeads ?? 1, layers = shape.layers ?? 1, ffn = shape.ffn ?? 24, context = shape.context ?? 64;
  const hd = d / heads;
  const vocab = TINY_SPM_TOKENS.length;
  let s = seed >>> 0 || 1;
  const rnd = (n: number, centre = 0) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = centre + ((s / 2 ** 32) * 2 - 1) * scale;
    }
    return out;
  };
  const tensors: TensorEntry[] = [];
  const put = (name: string, ne: number[], data: Float32Array) => tensors.push({ name, ne, type: 0, bytes: f32Bytes(data) });
  put('token_embd.weight', [d, vocab], rnd(vocab * d));
  for (let i = 0; i < layers; i++) {
    put(`blk.${i}.attn_norm.weight`, [d], rnd(d, 1));
    put(`blk.${i}.attn_q.weight`, [d, heads * hd], rnd(heads * hd * d));
    put(`blk.${i}.attn_k.weight`, [d, kvHeads * hd], rnd(kvHeads * hd * d));
    put(`blk.${i}.attn_v.weight`, [d, kvHeads * hd], rnd(kvHeads * hd * d));
    put(`blk.${i}.attn_output.weight`, [heads * hd, d], rnd(d * heads * hd));
    put(`blk.${i}.ffn_norm.weight`, [d], rnd(d, 1));
    put(`blk.${i}.ffn_gate.weight`, [d, ffn], rnd(ffn * d));
    put(`blk.${i}.ffn_up.weight`, [d, ffn], rnd(ffn * d));
    put(`blk.${i}.ffn_down.weight`, [ffn, d], rnd(d * ffn));
  }
  put('output_norm.weight', [d], rnd(d, 1));
  put('output.weight', [d, vocab], rnd(vocab * d));
  const scores = TINY_SPM_TOKENS.map((t, i) => (i < 259 ? 0 : -(i - 259)));
  const types = TINY_SPM_TOKENS.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
  const metadata: MetaEntry[] = [
    ['general.architecture', T.STR, 'llama'],
    ['general.name', T.STR, `tiny-llama-${seed}`],
    ['llama.context_length', T.U32, context],
    ['llama.embedding_length', T.U32, d],
    ['llama.block_count', T.U32, layers],
    ['llama.feed_forward_length', T.U32, ffn],
    ['llama.attention.head_count', T.U32, heads],
    ['llama.attention.head_count_kv', T.U32, kvHeads],
    ['llama.rope.dimension_count', T.U32, hd],
    ['llama.rope.freq_base', T.F32, 10000],
    ['llama.attention.layer_norm_rms_epsilon', T.F32, 1e-5],
    ['tokenizer.ggml.model', T.STR, 'llama'],
    ['tokenizer.ggml.tokens', T.ARR, { type: T.STR, values: [...TINY_SPM_TOKENS] }],
    ['tokenizer.ggml.scores', T.ARR, { type: T.F32, values: scores }],
    ['tokenizer.ggml.token_type', T.ARR, { type: T.I32, values: types }],
    ['tokenizer.ggml.bos_token_id', T.U32, 1],
    ['tokenizer.ggml.eos_token_id', T.U32, 2],
    ['tokenizer.ggml.unknown_token_id', T.U32, 0],
    ...extraMeta,
  ];
  return encodeGguf({ metadata, tensors });
}
