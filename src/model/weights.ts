// Named float32 weights and their on-disk form: weights.bin (little-endian float32, tensors
// concatenated) + weights.json ([{name, shape, offset}] with offset in floats). Plain enough
// for the ONNX exporter, PyTorch baselines and any other tool to read.
//
// Names (the GPT layout, nanoGPT-like; matrices are [in, out] so y = x @ W + b):
//   wte [vocab, d]         token embedding, also the tied output projection (logits = x @ wte^T)
//   wpe [context, d]       learned position embedding
//   h.{i}.ln1.gamma/beta [d]
//   h.{i}.attn.wqkv [d, 3d], h.{i}.attn.bqkv [3d]   (q, k, v concatenated along the output axis)
//   h.{i}.attn.wo [d, d],    h.{i}.attn.bo [d]
//   h.{i}.ln2.gamma/beta [d]
//   h.{i}.mlp.w1 [d, 4d], h.{i}.mlp.b1 [4d], h.{i}.mlp.w2 [4d, d], h.{i}.mlp.b2 [d]
//   lnf.gamma/beta [d]
// LayerNorm epsilon 1e-5; GELU is the tanh approximation; attention is causal, scaled by 1/sqrt(headDim).
//
// The llama layout (config.arch === 'llama'; no biases; H = heads, K = kvHeads, hd = headDim, f = ffnHidden):
//   tok_embeddings [vocab, d]
//   h.{i}.attn_norm [d]                       RMSNorm weight
//   h.{i}.attn.wq [d, H*hd], h.{i}.attn.wk [d, K*hd], h.{i}.attn.wv [d, K*hd], h.{i}.attn.wo [H*hd, d]
//   h.{i}.ffn_norm [d]
//   h.{i}.mlp.gate [d, f], h.{i}.mlp.up [d, f], h.{i}.mlp.down [f, d]
//   norm [d]
//   output [vocab, d]   rows = vocabulary (logits = x @ output^T); absent when tiedEmbeddings
// The math (HF LlamaForCausalLM) is in src/model/onnx-llama.ts and reference-forward.ts.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { llamaDims, type ModelConfig } from './config.ts';

export const LAYER_NORM_EPS = 1e-5;

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}
export type NamedWeights = Map<string, WeightTensor>;

interface WeightEntry {
  name: string;
  shape: number[];
  offset: number;
}

/** Expected names and shapes for a config (either architecture), in a fixed order. */
export function weightShapes(c: ModelConfig): Array<[string, number[]]> {
  if (c.arch === 'llama') return llamaWeightShapes(c);
  const d = c.dModel;
  const out: Array<[string, number[]]> = [
    ['wte', [c.vocab, d]],
    ['wpe', [c.context, d]],
  ];
  for (let i = 0; i < c.layers; i++) {
    out.push(
      [`h.${i}.ln1.gamma`, [d]],
      [`h.${i}.ln1.beta`, [d]],
      [`h.${i}.attn.wqkv`, [d, 3 * d]],
      [`h.${i}.attn.bqkv`, [3 * d]],
      [`h.${i}.attn.wo`, [d, d]],
      [`h.${i}.attn.bo`, [d]],
      [`h.${i}.ln2.gamma`, [d]],
      [`h.${i}.ln2.beta`, [d]],
      [`h.${i}.mlp.w1`, [d, 4 * d]],
      [`h.${i}.mlp.b1`, [4 * d]],
      [`h.${i}.mlp.w2`, [4 * d, d]],
      [`h.${i}.mlp.b2`, [d]],
    );
  }
  out.push(['lnf.gamma', [d]], ['lnf.beta', [d]]);
  return out;
}

function llamaWeightShapes(c: ModelConfig): Array<[string, number[]]> {
  const d = c.dModel;
  const { kvHeads, headDim, ffnHidden, tiedEmbeddings } = llamaDims(c);
  const q = c.heads * headDim;
  const kv = kvHeads * headDim;
  const out: Array<[string, number[]]> = [['tok_embeddings', [c.vocab, d]]];
  for (let i = 0; i < c.layers; i++) {
    out.push(
      [`h.${i}.attn_norm`, [d]],
      [`h.${i}.attn.wq`, [d, q]],
      [`h.${i}.attn.wk`, [d, kv]],
      [`h.${i}.attn.wv`, [d, kv]],
      [`h.${i}.attn.wo`, [q, d]],
      [`h.${i}.ffn_norm`, [d]],
      [`h.${i}.mlp.gate`, [d, ffnHidden]],
      [`h.${i}.mlp.up`, [d, ffnHidden]],
      [`h.${i}.mlp.down`, [ffnHidden, d]],
    );
  }
  out.push(['norm', [d]]);
  if (!tiedEmbeddings) out.push(['output', [c.vocab, d]]);
  return out;
}

/** Checks that `weights` holds exactly the tensors `config` needs, with the right shapes. */
export function checkWeights(weights: NamedWeights, config: ModelConfig): void {
  const expected = weightShapes(config);
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (!t) throw new Error(`weights: missing tensor ${name}`);
    if (t.shape.join(',') !== shape.join(',')) {
      throw new Error(`weights: ${name} has shape [${t.shape}] but the config needs [${shape}]`);
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) throw new Error(`weights: ${name} has ${t.data.length} values, expected ${size}`);
  }
  if (weights.size !== expected.length) {
    const known = new Set(expected.map(([n]) => n));
    const extra = [...weights.keys()].filter((n) => !known.has(n));
    throw new Error(`weights: unexpected tensors ${extra.join(', ')}`);
  }
}

export async function saveWeights(dir: string, weights: NamedWeights): Promise<void> {
  const entries: WeightEntry[] = [];
  let total = 0;
  for (const [name, t] of weights) {
    entries.push({ name, shape: t.shape, offset: total });
    total += t.data.length;
  }
  const all = new Float32Array(total);
  for (const e of entries) all.set(weights.get(e.name)!.data, e.offset);
  const bytes = new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian hosts are not supported');
  await writeFileAtomic(path.join(dir, 'weights.bin'), bytes);
  await writeFileAtomic(path.join(dir, 'weights.json'), JSON.stringify(entries, null, 1) + '\n');
}

export async function loadWeights(dir: string): Promise<NamedWeights> {
  const entries = JSON.parse(await fs.readFile(path.join(dir, 'weights.json'), 'utf8')) as WeightEntry[];
  const buf = await fs.readFile(path.join(dir, 'weights.bin'));
  const floats = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const out: NamedWeights = new Map();
  for (const e of entries) {
    const size = e.shape.reduce((a, b) => a * b, 1);
    if (e.offset + size > floats.length) throw new Error(`${path.join(dir, 'weights.bin')}: tensor ${e.name} runs past the end of the file`);
    out.set(e.name, { shape: e.shape, data: floats.slice(e.offset, e.offset + size) });
  }
  return out;
}
