// Hugging Face GPT-2 folders <-> our GPT (src/model/weights.ts). Our decoder is GPT-2's
// architecture (learned positions, pre-LayerNorm, GELU tanh, output head tied to wte, LayerNorm
// epsilon 1e-5), so the mapping is a renaming: transformers' GPT-2 keeps its dense layers as
// Conv1D with weight [in, out] (y = x W + b), the same layout as ours, and c_attn's output is
// q, k, v concatenated in that order (split(n_embd, dim=2) in modeling_gpt2.py), as our wqkv.
//
//   ours                  transformers (GPT2LMHeadModel state dict)
//   wte [vocab, d]        transformer.wte.weight       (lm_head.weight is the same tensor, tied)
//   wpe [context, d]      transformer.wpe.weight
//   h.i.ln1.gamma/beta    transformer.h.i.ln_1.weight/bias
//   h.i.attn.wqkv/bqkv    transformer.h.i.attn.c_attn.weight [d, 3d] / bias [3d]
//   h.i.attn.wo/bo        transformer.h.i.attn.c_proj.weight [d, d] / bias
//   h.i.ln2.gamma/beta    transformer.h.i.ln_2.weight/bias
//   h.i.mlp.w1/b1         transformer.h.i.mlp.c_fc.weight [d, 4d] / bias
//   h.i.mlp.w2/b2         transformer.h.i.mlp.c_proj.weight [4d, d] / bias
//   lnf.gamma/beta        transformer.ln_f.weight/bias
//
// Reading accepts names with or without the "transformer." prefix (GPT2Model saves without),
// ignores the attention-mask buffers older checkpoints carry (attn.bias, attn.masked_bias) and
// accepts lm_head.weight only when it equals wte. Writing follows save_pretrained: the tied
// lm_head is not stored. Configs our graph cannot run (another epsilon or activation, untied
// head, n_inner != 4 n_embd, ...) and other model types are errors naming config.json and the field.
// Llama and Mistral folders (model_type "llama" / "mistral") are read and written through the
// mapping in hf-llama.ts; loadHfCheckpoint and modelConfigFromHf dispatch on model_type.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeDirAtomic } from '../util/atomic.ts';
import { validateModelConfig, type ModelConfig } from '../model/config.ts';
import { LAYER_NORM_EPS, weightShapes, type NamedWeights } from '../model/weights.ts';
import { readSafetensorsDir, SAFETENSORS_FILE, writeSafetensors } from './safetensors.ts';
import { fromHfLlamaTensors, hfLlamaConfig, llamaConfigFromHf, LLAMA_MODEL_TYPES, toHfLlamaTensors } from './hf-llama.ts';
import { tokenizerHash, weightsHash } from './hash.ts';
import { checkFiniteTensors } from './finite.ts';
import { readPythonJson } from './json.ts';
import type { CheckpointManifest, LoadedCheckpoint } from './native.ts';

/** Model types we know by name but do not read (gpt2, llama and mistral are read). */
const NOT_YET_SUPPORTED = new Set(['qwen2', 'gpt_neox']);
/** transformers' names for GELU with the tanh approximation (our GELU). */
const TANH_GELU = new Set(['gelu_new', 'gelu_pytorch_tanh']);

/** The HF name of one of our tensors (GPT2LMHeadModel's, with the "transformer." prefix). */
export function hfGpt2Name(ours: string): string {
  const fixed: Record<string, string> = {
    wte: 'wte.weight',
    wpe: 'wpe.weight',
    'lnf.gamma': 'ln_f.weight',
    'lnf.beta': 'ln_f.bias',
  };
  if (fixed[ours]) return `transformer.${fixed[ours]}`;
  const m = /^h\.(\d+)\.(.+)$/.exec(ours);
  const inner: Record<string, string> = {
    'ln1.gamma': 'ln_1.weight',
    'ln1.beta': 'ln_1.bias',
    'attn.wqkv': 'attn.c_attn.weight',
    'attn.bqkv': 'attn.c_attn.bias',
    'attn.wo': 'attn.c_proj.weight',
    'attn.bo': 'attn.c_proj.bias',
    'ln2.gamma': 'ln_2.weight',
    'ln2.beta': 'ln_2.bias',
    'mlp.w1': 'mlp.c_fc.weight',
    'mlp.b1': 'mlp.c_fc.bias',
    'mlp.w2': 'mlp.c_proj.weight',
    'mlp.b2': 'mlp.c_proj.bias',
  };
  if (!m || !inner[m[2]!]) throw new Error(`no Hugging Face GPT-2 name for tensor ${ours}`);
  return `transformer.h.${m[1]}.${inner[m[2]!]}`;
}

export interface HfSpecialTokens {
  bos?: number;
  eos?: number;
  pad?: number;
}

/** config.json for our model as transformers' GPT2Config (dropout 0: the folder is for inference and further training sets its own). */
export function hfGpt2Config(model: ModelConfig, tokens: HfSpecialTokens = {}): Record<string, unknown> {
  validateModelConfig(model);
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: model.vocab,
    n_positions: model.context,
    n_ctx: model.context,
    n_embd: model.dModel,
    n_layer: model.layers,
    n_head: model.heads,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: LAYER_NORM_EPS,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    use_cache: true,
    ...(tokens.bos !== undefined ? { bos_token_id: tokens.bos } : {}),
    ...(tokens.eos !== undefined ? { eos_token_id: tokens.eos } : {}),
    ...(tokens.pad !== undefined ? { pad_token_id: tokens.pad } : {}),
    torch_dtype: 'float32',
  };
}

/**
 * Our ModelConfig from an HF config.json object: gpt2, or llama / mistral (hf-llama.ts, arch
 * 'llama'). Throws `<file>: <field>: ...` for another model type (other known ones: "not
 * supported yet"), a missing or non-integer size, and any option our graphs do not implement.
 */
export function modelConfigFromHf(config: unknown, file: string): ModelConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${file}: expected a JSON object`);
  const c = config as Record<string, unknown>;
  const type = c.model_type;
  if (typeof type !== 'string') throw new Error(`${file}: model_type: missing (expected "gpt2", "llama" or "mistral")`);
  if (NOT_YET_SUPPORTED.has(type)) throw new Error(`${file}: model_type: ${JSON.stringify(type)} is not supported yet (only "gpt2", "llama" and "mistral" are read today)`);
  if (LLAMA_MODEL_TYPES.has(type)) return llamaConfigFromHf(c, file);
  if (type !== 'gpt2') throw new Error(`${file}: model_type: unknown model type ${JSON.stringify(type)} (only "gpt2", "llama" and "mistral" are read)`);
  const int = (key: string): number => {
    const v = c[key];
    if (!Number.isInteger(v) || (v as number) <= 0) throw new Error(`${file}: ${key}: expected a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const model: ModelConfig = { vocab: int('vocab_size'), context: int('n_positions'), dModel: int('n_embd'), layers: int('n_layer'), heads: int('n_head') };
  if (model.dModel % model.heads !== 0) throw new Error(`${file}: n_head: ${model.heads} does not divide n_embd ${model.dModel}`);
  const unsupported = (field: string, value: unknown, why: string): never => {
    throw new Error(`${file}: ${field}: ${JSON.stringify(value)} is not supported (${why})`);
  };
  if (c.n_inner !== undefined && c.n_inner !== null && c.n_inner !== 4 * model.dModel) unsupported('n_inner', c.n_inner, `the MLP is 4 x n_embd = ${4 * model.dModel}`);
  const act = c.activation_function ?? 'gelu_new';
  if (typeof act !== 'string' || !TANH_GELU.has(act)) unsupported('activation_function', act, 'only GELU with the tanh approximation: gelu_new, gelu_pytorch_tanh');
  const eps = c.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || Math.abs(eps - LAYER_NORM_EPS) > 1e-12) unsupported('layer_norm_epsilon', eps, `the graph's LayerNorm epsilon is ${LAYER_NORM_EPS}`);
  if (c.scale_attn_weights === false) unsupported('scale_attn_weights', false, 'attention is scaled by 1/sqrt(head dim)');
  if (c.scale_attn_by_inverse_layer_idx === true) unsupported('scale_attn_by_inverse_layer_idx', true, 'no per-layer attention scaling');
  if (c.add_cross_attention === true) unsupported('add_cross_attention', true, 'decoder only');
  if (c.tie_word_embeddings === false) unsupported('tie_word_embeddings', false, 'the output head is tied to wte');
  return model;
}

/** Our weights under their HF GPT-2 names (the same Float32Arrays: layouts coincide). */
export function toHfGpt2Tensors(model: ModelConfig, weights: NamedWeights): NamedWeights {
  const out: NamedWeights = new Map();
  for (const [name, shape] of weightShapes(model)) {
    const t = weights.get(name);
    if (!t) throw new Error(`weights: missing tensor ${name}`);
    if (t.shape.join(',') !== shape.join(',')) throw new Error(`weights: ${name} has shape [${t.shape}] but the config needs [${shape}]`);
    out.set(hfGpt2Name(name), t);
  }
  return out;
}

/**
 * Our weights from HF GPT-2 tensors. `fileOf` names each tensor's file for errors, `missingFile`
 * the file a missing tensor should have been in (model.safetensors, or the index of a sharded set). Throws
 * `<file>: missing tensor <hf name>`, `<file>: tensor <hf name>: shape [...], config.json needs [...]`,
 * and for any tensor that is neither a GPT-2 weight nor an ignorable buffer.
 */
export function fromHfGpt2Tensors(model: ModelConfig, tensors: NamedWeights, fileOf: (hfName: string) => string, missingFile: string): NamedWeights {
  const prefixed = [...tensors.keys()].some((n) => n.startsWith('transformer.'));
  const key = (hfName: string) => (prefixed ? hfName : hfName.slice('transformer.'.length));
  const out: NamedWeights = new Map();
  const used = new Set<string>();
  for (const [name, shape] of weightShapes(model)) {
    const hf = key(hfGpt2Name(name));
    const t = tensors.get(hf);
    if (!t) throw new Error(`${missingFile}: missing tensor ${hf}`);
    if (t.shape.join(',') !== shape.join(',')) throw new Error(`${fileOf(hf)}: tensor ${hf}: shape [${t.shape.join(', ')}], config.json needs [${shape.join(', ')}]`);
    out.set(name, t);
    used.add(hf);
  }
  for (const [name, t] of tensors) {
    if (used.has(name)) continue;
    if (/(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/.test(name)) continue; // causal-mask buffers of older saves
    if (name === 'lm_head.weight') {
      const wte = out.get('wte')!;
      const same = t.shape.join(',') === wte.shape.join(',') && t.data.every((v, i) => Object.is(v, wte.data[i]));
      if (!same) throw new Error(`${fileOf(name)}: tensor lm_head.weight differs from ${key('transformer.wte.weight')}: an untied output head is not supported`);
      continue;
    }
    throw new Error(`${fileOf(name)}: tensor ${name} is not part of a GPT-2 model (unexpected tensor)`);
  }
  return out;
}

export interface HfExportFiles {
  /** tokenizer.json content (required: evaluation tokenizes with it). */
  tokenizer: unknown;
  /** tokenizer_config.json content. */
  tokenizerConfig?: Record<string, unknown>;
  /** generation_config.json content. */
  generationConfig?: Record<string, unknown>;
  tokens?: HfSpecialTokens;
}

/**
 * Writes an HF GPT-2 folder at `dir`: config.json, model.safetensors (F32, HF names, no
 * lm_head: tied), tokenizer.json and the optional tokenizer_config.json / generation_config.json.
 * The folder is built aside and renamed into place (an existing one is replaced only when the
 * new one is complete). Returns the file names written.
 */
export async function writeHfGpt2(dir: string, model: ModelConfig, weights: NamedWeights, files: HfExportFiles): Promise<string[]> {
  const tensors = toHfGpt2Tensors(model, weights);
  const written: string[] = [];
  await writeDirAtomic(dir, async (tmp) => {
    const put = async (name: string, data: string | Uint8Array) => {
      await fs.writeFile(path.join(tmp, name), data);
      written.push(name);
    };
    await put('config.json', JSON.stringify(hfGpt2Config(model, files.tokens), null, 2) + '\n');
    await writeSafetensors(path.join(tmp, SAFETENSORS_FILE), tensors, { format: 'pt' });
    written.push(SAFETENSORS_FILE);
    await put('tokenizer.json', JSON.stringify(files.tokenizer));
    if (files.tokenizerConfig) await put('tokenizer_config.json', JSON.stringify(files.tokenizerConfig, null, 2) + '\n');
    if (files.generationConfig) await put('generation_config.json', JSON.stringify(files.generationConfig, null, 2) + '\n');
  });
  return written;
}

/**
 * Writes an HF Llama folder at `dir` (LlamaForCausalLM: config.json, model.safetensors with HF
 * names and [out, in] projections, F32 or BF16 (rounded to nearest even), no lm_head when tied;
 * tokenizer.json and the optional tokenizer_config.json / generation_config.json), built aside
 * and renamed into place. Returns the file names written.
 */
export async function writeHfLlama(dir: string, model: ModelConfig, weights: NamedWeights, files: HfExportFiles & { dtype?: 'F32' | 'BF16' }): Promise<string[]> {
  const tensors = toHfLlamaTensors(model, weights);
  const dtype = files.dtype ?? 'F32';
  const written: string[] = [];
  await writeDirAtomic(dir, async (tmp) => {
    const put = async (name: string, data: string | Uint8Array) => {
      await fs.writeFile(path.join(tmp, name), data);
      written.push(name);
    };
    await put('config.json', JSON.stringify(hfLlamaConfig(model, files.tokens, dtype === 'BF16' ? 'bfloat16' : 'float32'), null, 2) + '\n');
    await writeSafetensors(path.join(tmp, SAFETENSORS_FILE), tensors, { format: 'pt' }, { dtype });
    written.push(SAFETENSORS_FILE);
    await put('tokenizer.json', JSON.stringify(files.tokenizer));
    if (files.tokenizerConfig) await put('tokenizer_config.json', JSON.stringify(files.tokenizerConfig, null, 2) + '\n');
    if (files.generationConfig) await put('generation_config.json', JSON.stringify(files.generationConfig, null, 2) + '\n');
  });
  return written;
}

/** tokenizer.json and other files transformers writes with standard JSON (JSON.parse; no NaN extension: large files stay on the fast path). */
async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
}

/** Epoch, step and last logged training loss from trainer_state.json when the folder has one. */
async function trainerPosition(dir: string): Promise<{ epoch: number; step: number; trainLoss: number }> {
  const file = path.join(dir, 'trainer_state.json');
  try {
    await fs.access(file);
  } catch {
    return { epoch: 0, step: 0, trainLoss: NaN };
  }
  const state = (await readPythonJson(file)) as { epoch?: unknown; global_step?: unknown; log_history?: unknown };
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  let trainLoss = NaN;
  if (Array.isArray(state?.log_history)) {
    for (const entry of state.log_history as Array<Record<string, unknown>>) if (num(entry?.loss) !== undefined) trainLoss = entry.loss as number;
  }
  return { epoch: num(state?.epoch) ?? 0, step: num(state?.global_step) ?? 0, trainLoss };
}

/**
 * Loads an HF GPT-2, Llama or Mistral folder as a LoadedCheckpoint, the shape native
 * loadCheckpoint returns, so evaluation uses it unchanged. Weights are decoded to float32 (F32, F16 or BF16 files) and hashed
 * with weightsHash, so an exported native checkpoint keeps its content hash. The manifest is
 * synthesised: backend "hf-<model_type>" ("hf-gpt2", "hf-llama", "hf-mistral"), epoch/step/trainLoss from trainer_state.json when present (else
 * 0, 0, NaN), no per-file hashes (files {}), time = model weights' modification time.
 * Throws naming the file (and tensor or field) for an unreadable or unsupported folder.
 */
export async function loadHfCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const configFile = path.join(dir, 'config.json');
  const rawConfig = await readPythonJson(configFile);
  const model = modelConfigFromHf(rawConfig, configFile);
  const modelType = (rawConfig as { model_type: string }).model_type;
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  const tokenizer = await readJson(tokenizerFile);
  const read = await readSafetensorsDir(dir);
  checkFiniteTensors(read.weights, (n) => read.fileOf.get(n) ?? read.files[0]!);
  const fromHf = model.arch === 'llama' ? fromHfLlamaTensors : fromHfGpt2Tensors;
  const weights = fromHf(model, read.weights, (n) => read.fileOf.get(n) ?? read.files[0]!, read.files[0]!);
  const hash = weightsHash(model, weights);
  const position = await trainerPosition(dir);
  const stat = await fs.stat(read.files[read.files.length - 1]!);
  const manifest: CheckpointManifest = {
    ...position,
    dataHash: '',
    configHash: '',
    backend: `hf-${modelType}`,
    files: {},
    weightsHash: hash,
    time: stat.mtime.toISOString(),
    extra: { format: 'hf', dtypes: [...new Set(read.dtypes.values())].sort() },
  };
  return { dir, manifest, model, weights, tokenizer, hash, tokenizerHash: tokenizerHash(tokenizer) };
}
