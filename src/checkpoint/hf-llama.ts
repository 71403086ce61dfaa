// Hugging Face Llama / Mistral folders <-> our llama layout (src/model/weights.ts, arch 'llama').
// transformers' LlamaForCausalLM and MistralForCausalLM keep nn.Linear weights as [out, in]
// (y = x W^T); ours are [in, out], so every projection is transposed on the way in and out. The
// embedding and lm_head are [vocab, d] in both. RoPE is the rotate_half convention in both, so
// wq/wk rows are not permuted (that is only for GGUF / Meta checkpoints).
//
//   ours                  transformers (LlamaForCausalLM state dict)
//   tok_embeddings        model.embed_tokens.weight [vocab, d]
//   h.i.attn_norm         model.layers.i.input_layernorm.weight [d]
//   h.i.attn.wq/wk/wv/wo  model.layers.i.self_attn.{q,k,v,o}_proj.weight, transposed
//   h.i.ffn_norm          model.layers.i.post_attention_layernorm.weight [d]
//   h.i.mlp.gate/up/down  model.layers.i.mlp.{gate,up,down}_proj.weight, transposed
//   norm                  model.norm.weight [d]
//   output                lm_head.weight [vocab, d] (absent, or equal to the embedding, when tie_word_embeddings)
//
// Names are accepted with or without the "model." prefix (LlamaModel saves without); the
// rotary inv_freq buffers of older saves are ignored. Configs the graph does not implement
// (rope_scaling, biases, another activation, a sliding window shorter than the context) are
// errors naming config.json and the field.
import { llamaDims, validateModelConfig, type ModelConfig } from '../model/config.ts';
import { weightShapes, type NamedWeights, type WeightTensor } from '../model/weights.ts';

/** HF model_type values read as arch 'llama'. */
export const LLAMA_MODEL_TYPES = new Set(['llama', 'mistral']);

const TRANSPOSED = /^(attn\.w[qkvo]|mlp\.(gate|up|down))$/;

/** The HF name of one of our llama tensors (LlamaForCausalLM's, with the "model." prefix). */
export function hfLlamaName(ours: string): string {
  const fixed: Record<string, string> = { tok_embeddings: 'model.embed_tokens.weight', norm: 'model.norm.weight', output: 'lm_head.weight' };
  if (fixed[ours]) return fixed[ours]!;
  const m = /^h\.(\d+)\.(.+)$/.exec(ours);
  const inner: Record<string, string> = {
    attn_norm: 'input_layernorm.weight',
    'attn.wq': 'self_attn.q_proj.weight',
    'attn.wk': 'self_attn.k_proj.weight',
    'attn.wv': 'self_attn.v_proj.weight',
    'attn.wo': 'self_attn.o_proj.weight',
    ffn_norm: 'post_attention_layernorm.weight',
    'mlp.gate': 'mlp.gate_proj.weight',
    'mlp.up': 'mlp.up_proj.weight',
    'mlp.down': 'mlp.down_proj.weight',
  };
  if (!m || !inner[m[2]!]) throw new Error(`no Hugging Face Llama name for tensor ${ours}`);
  return `model.layers.${m[1]}.${inner[m[2]!]}`;
}

/** [rows, cols] row-major -> [cols, rows]. */
export function transpose2d(t: WeightTensor): WeightTensor {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[base + c]!;
  }
  return { shape: [cols, rows], data: out };
}

/** Whether our llama tensor `ours` is a projection, stored [out, in] by HF and GGUF and [in, out] by us. */
export function isTransposedLlamaWeight(ours: string): boolean {
  const m = /^h\.\d+\.(.+)$/.exec(ours);
  return !!m && TRANSPOSED.test(m[1]!);
}

/**
 * Our llama ModelConfig from an HF config.json object with model_type "llama" or "mistral".
 * Throws `<file>: <field>: ...` for a missing or invalid size and for every option the graph does
 * not implement: rope_scaling (or rope_parameters of another rope_type), hidden_act other than
 * silu, attention_bias / mlp_bias, a Mistral sliding_window shorter than max_position_embeddings.
 */
export function llamaConfigFromHf(c: Record<string, unknown>, file: string): ModelConfig {
  const type = c.model_type as string;
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (!Number.isInteger(v) || (v as number) <= 0) throw new Error(`${file}: ${key}: expected a positive integer, got ${JSON.stringify(c[key])}`);
    return v as number;
  };
  const num = (key: string, value: unknown): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new Error(`${file}: ${key}: expected a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  const unsupported = (field: string, value: unknown, why: string): never => {
    throw new Error(`${file}: ${field}: ${JSON.stringify(value)} is not supported (${why})`);
  };
  const heads = int('num_attention_heads');
  const dModel = int('hidden_size');
  const model: ModelConfig = {
    arch: 'llama',
    vocab: int('vocab_size'),
    context: int('max_position_embeddings'),
    dModel,
    layers: int('num_hidden_layers'),
    heads,
    kvHeads: int('num_key_value_heads', heads),
    headDim: c.head_dim === undefined || c.head_dim === null ? undefined : int('head_dim'),
    ffnHidden: int('intermediate_size'),
    ropeTheta: 10000,
    normEps: num('rms_norm_eps', c.rms_norm_eps ?? 1e-6),
    tiedEmbeddings: false,
  };
  if (model.headDim === undefined) {
    if (dModel % heads !== 0) throw new Error(`${file}: num_attention_heads: ${heads} does not divide hidden_size ${dModel} (and head_dim is not given)`);
    model.headDim = dModel / heads;
  }
  if (heads % model.kvHeads! !== 0) throw new Error(`${file}: num_key_value_heads: ${model.kvHeads} does not divide num_attention_heads ${heads}`);
  if (model.headDim % 2 !== 0) throw new Error(`${file}: head_dim: ${model.headDim} is odd (rotary embeddings rotate pairs)`);
  // RoPE: rope_theta (transformers <= 4.x) or rope_parameters {rope_type, rope_theta} (5.x).
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) unsupported('rope_scaling', c.rope_scaling, 'only plain RoPE; scaled variants (linear, dynamic, yarn, llama3, ...) are not implemented');
  const params = c.rope_parameters;
  if (params !== undefined && params !== null) {
    if (typeof params !== 'object' || Array.isArray(params)) throw new Error(`${file}: rope_parameters: expected an object, got ${JSON.stringify(params)}`);
    const p = params as Record<string, unknown>;
    const ropeType = p.rope_type ?? p.type ?? 'default';
    if (ropeType !== 'default') unsupported('rope_parameters.rope_type', ropeType, 'only plain RoPE ("default")');
    if (p.rope_theta !== undefined) model.ropeTheta = num('rope_parameters.rope_theta', p.rope_theta);
  }
  if (c.rope_theta !== undefined && c.rope_theta !== null) model.ropeTheta = num('rope_theta', c.rope_theta);
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish') unsupported('hidden_act', act, 'the MLP is SwiGLU with silu');
  if (c.attention_bias === true) unsupported('attention_bias', true, 'the attention projections have no biases');
  if (c.mlp_bias === true) unsupported('mlp_bias', true, 'the MLP projections have no biases');
  if (type === 'mistral') {
    const window = c.sliding_window;
    if (window !== undefined && window !== null && !(typeof window === 'number' && window >= model.context)) {
      unsupported('sliding_window', window, `attention is full causal: the window must be null or at least max_position_embeddings (${model.context})`);
    }
  }
  const tie = c.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') throw new Error(`${file}: tie_word_embeddings: expected true or false, got ${JSON.stringify(tie)}`);
  model.tiedEmbeddings = tie;
  validateModelConfig(model, file);
  return model;
}

/** config.json for a llama model as transformers' LlamaConfig (dtype names the stored tensors' type). */
export function hfLlamaConfig(model: ModelConfig, tokens: { bos?: number; eos?: number; pad?: number } = {}, dtype: 'float32' | 'bfloat16' = 'float32'): Record<string, unknown> {
  validateModelConfig(model);
  if (model.arch !== 'llama') throw new Error('hfLlamaConfig: model.arch must be "llama"');
  const l = llamaDims(model);
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: model.vocab,
    hidden_size: model.dModel,
    intermediate_size: l.ffnHidden,
    num_hidden_layers: model.layers,
    num_attention_heads: model.heads,
    num_key_value_heads: l.kvHeads,
    head_dim: l.headDim,
    max_position_embeddings: model.context,
    rms_norm_eps: l.normEps,
    rope_theta: l.ropeTheta,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0,
    mlp_bias: false,
    initializer_range: 0.02,
    pretraining_tp: 1,
    tie_word_embeddings: l.tiedEmbeddings,
    use_cache: true,
    ...(tokens.bos !== undefined ? { bos_token_id: tokens.bos } : {}),
    ...(tokens.eos !== undefined ? { eos_token_id: tokens.eos } : {}),
    ...(tokens.pad !== undefined ? { pad_token_id: tokens.pad } : {}),
    torch_dtype: dtype,
  };
}

/** Our llama weights under their HF names and layouts (projections transposed to [out, in]; no lm_head when tied). */
export function toHfLlamaTensors(model: ModelConfig, weights: NamedWeights): NamedWeights {
  const out: NamedWeights = new Map();
  for (const [name, shape] of weightShapes(model)) {
    const t = weights.get(name);
    if (!t) throw new Error(`weights: missing tensor ${name}`);
    if (t.shape.join(',') !== shape.join(',')) throw new Error(`weights: ${name} has shape [${t.shape}] but the config needs [${shape}]`);
    out.set(hfLlamaName(name), isTransposedLlamaWeight(name) ? transpose2d(t) : t);
  }
  return out;
}

/**
 * Our llama weights from HF tensors. `fileOf` names each tensor's file for errors, `missingFile`
 * the file a missing tensor should have been in. Throws `<file>: missing tensor <hf name>`,
 * `<file>: tensor <hf name>: shape [...], config.json needs [...]`, for an lm_head that differs
 * from the embedding in a tied model, and for any tensor that is not part of the model.
 * Consumes `tensors`: each model tensor is deleted from the map once converted, so the HF and the
 * transposed copies of the weights are never all held at once (what remains are the tensors the
 * model does not use).
 */
export function fromHfLlamaTensors(model: ModelConfig, tensors: NamedWeights, fileOf: (hfName: string) => string, missingFile: string): NamedWeights {
  const prefixed = [...tensors.keys()].some((n) => n.startsWith('model.'));
  const key = (hf: string): string => (prefixed || !hf.startsWith('model.') ? hf : hf.slice('model.'.length));
  const out: NamedWeights = new Map();
  const used = new Set<string>();
  for (const [name, shape] of weightShapes(model)) {
    const hf = key(hfLlamaName(name));
    const t = tensors.get(hf);
    if (!t) throw new Error(`${missingFile}: missing tensor ${hf}${name === 'output' ? ' (config.json has tie_word_embeddings false)' : ''}`);
    const hfShape = isTransposedLlamaWeight(name) ? [shape[1]!, shape[0]!] : shape;
    if (t.shape.join(',') !== hfShape.join(',')) throw new Error(`${fileOf(hf)}: tensor ${hf}: shape [${t.shape.join(', ')}], config.json needs [${hfShape.join(', ')}]`);
    out.set(name, isTransposedLlamaWeight(name) ? transpose2d(t) : t);
    tensors.delete(hf); // the HF copy of a transposed matrix can be freed now
    used.add(hf);
  }
  for (const [name, t] of tensors) {
    if (used.has(name)) continue;
    if (/(^|\.)layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name)) continue; // buffer of older saves
    if (name === 'lm_head.weight' && model.tiedEmbeddings) {
      const emb = out.get('tok_embeddings')!;
      const same = t.shape.join(',') === emb.shape.join(',') && t.data.every((v, i) => Object.is(v, emb.data[i]));
      if (!same) throw new Error(`${fileOf(name)}: tensor lm_head.weight differs from ${key('model.embed_tokens.weight')} but config.json has tie_word_embeddings true`);
      continue;
    }
    throw new Error(`${fileOf(name)}: tensor ${name} is not part of a Llama model (unexpected tensor)`);
  }
  return out;
}
