// Checkpoint -> ONNX decoder graph (opset 20), the math fixed by weights.ts:
//   x = wte[ids] + wpe[pos]; per layer: x += attn(LN1(x)); x += mlp(LN2(x)); logits = LN_f(x) @ wte^T
// Inputs/outputs follow the usual decoder-with-past layout, so one file serves full-sequence
// scoring (past length 0, empty past tensors) and incremental decoding:
//   input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64 (1 = real token),
//   position_ids [batch, seq] int64, past_key_values.{i}.key/.value [batch, heads, past, headDim]
//   -> logits [batch, seq, vocab], present.{i}.key/.value [batch, heads, past+seq, headDim],
//      and token_logprobs [batch, seq-1] = ln p(input_ids[:, t+1] | tokens up to t), so scoring
//      fetches 4 bytes per token instead of the whole logits tensor.
// Attention is always causal (query at absolute position past+s sees keys 0..past+s) and also
// skips keys whose attention_mask is 0 (right padding).
// A llama config (model.arch === 'llama') gets the llama graph of onnx-llama.ts instead, with the
// same inputs and outputs (its cache has kvHeads heads of headDim): buildOnnxModel and
// exportOnnxBytes dispatch on the architecture, so every caller works unchanged.
import type { ModelConfig } from './config.ts';
import { validateModelConfig } from './config.ts';
import { checkWeights, LAYER_NORM_EPS, type NamedWeights } from './weights.ts';
import { encodeModel, type ModelMsg } from './onnx-proto.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import {
  attentionBias,
  decoderConstants,
  decoderIO,
  flooredSoftmax,
  floatAttr,
  GraphBuilder,
  intAttr,
  intsAttr,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
  stringAttr,
  tokenLogprobsOutput,
} from './onnx-graph.ts';
import { buildLlamaOnnxModel } from './onnx-llama.ts';

export {
  floatAttr,
  GraphBuilder,
  intAttr,
  intsAttr,
  MASKED_SCORE,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
  SCORE_FLOOR,
  stringAttr,
} from './onnx-graph.ts';

/** Bump when a graph (GPT or llama) changes, so cached .onnx files are re-exported. */
export const ONNX_EXPORTER_VERSION = 5;

/** Builds the ModelProto (as a plain object) for a config and its weights (either architecture). */
export function buildOnnxModel(model: ModelConfig, weights: NamedWeights): ModelMsg {
  validateModelConfig(model);
  if (model.arch === 'llama') return buildLlamaOnnxModel(model, weights, String(ONNX_EXPORTER_VERSION));
  checkWeights(weights, model);
  const { vocab, dModel: d, heads, layers } = model;
  const headDim = d / heads;
  const w = (name: string): Float32Array => weights.get(name)!.data;
  const g = new GraphBuilder();

  // Constants.
  const consts = decoderConstants(g);
  // The residual stream is kept 2-D [batch*seq, d] so every linear layer is one Gemm with its
  // bias fused (onnxruntime only fuses MatMul+Add into Gemm for 2-D operands).
  const batchSeq = g.op1('Shape', ['input_ids'], [], 'batch_seq'); // [batch, seq]
  const headsShape = g.op1('Concat', [batchSeq, g.int64('const_heads_dims', [2], [heads, headDim])], [intAttr('axis', 0)], 'heads_shape');
  const hiddenShape = g.op1('Concat', [batchSeq, g.int64('const_model_dim', [1], [d])], [intAttr('axis', 0)], 'hidden_shape');
  const flatShape = g.int64('const_flat_shape', [2], [-1, d]);

  // Attention bias [batch, 1, seq, total] (onnx-graph.ts).
  const attnBias = attentionBias(g, consts);

  // Embeddings.
  g.float('wte', [vocab, d], w('wte'));
  g.float('wpe', [model.context, d], w('wpe'));
  const embed = g.op1('Add', [g.op1('Gather', ['wte', 'input_ids'], [intAttr('axis', 0)]), g.op1('Gather', ['wpe', 'position_ids'], [intAttr('axis', 0)])], [], 'embed');
  let x = g.op1('Reshape', [embed, flatShape], [], 'embed_flat');

  const layerNorm = (input: string, prefix: string, out: string): string =>
    g.op1('LayerNormalization', [input, g.float(`${prefix}.gamma`, [d], w(`${prefix}.gamma`)), g.float(`${prefix}.beta`, [d], w(`${prefix}.beta`))], [intAttr('axis', -1), floatAttr('epsilon', LAYER_NORM_EPS)], out);
  const linear = (input: string, wName: string, bName: string, inDim: number, outDim: number, out: string): string =>
    g.op1('Gemm', [input, g.float(wName, [inDim, outDim], w(wName)), g.float(bName, [outDim], w(bName))], [], out);
  // One of the fused wqkv's three [d, d] blocks as its own Gemm: three Gemms measured ~2 ms per
  // 8 x 256 batch faster than one Gemm and a Split that copies its output apart.
  const qkvPart = (input: string, prefix: string, part: 0 | 1 | 2, scale: number, out: string): string => {
    const wqkv = w(`${prefix}.wqkv`);
    const bqkv = w(`${prefix}.bqkv`);
    const wPart = new Float32Array(d * d);
    for (let r = 0; r < d; r++) for (let c = 0; c < d; c++) wPart[r * d + c] = wqkv[r * 3 * d + part * d + c]! * scale;
    const bPart = bqkv.slice(part * d, (part + 1) * d).map((b) => b * scale);
    const name = ['wq', 'wk', 'wv'][part]!;
    return g.op1('Gemm', [input, g.float(`${prefix}.${name}`, [d, d], wPart), g.float(`${prefix}.${name}.bias`, [d], bPart)], [], out);
  };
  const toHeads = (t: string, out: string): string => g.op1('Transpose', [g.op1('Reshape', [t, headsShape])], [intsAttr('perm', [0, 2, 1, 3])], out);

  for (let i = 0; i < layers; i++) {
    const p = `h.${i}`;
    // Attention.
    const h1 = layerNorm(x, `${p}.ln1`, `${p}.ln1.out`);
    // The attention scale is folded into the query weights: (h @ Wq + bq) * s = h @ (Wq * s) + bq * s.
    const q = qkvPart(h1, `${p}.attn`, 0, 1 / Math.sqrt(headDim), `${p}.q_flat`);
    const k = qkvPart(h1, `${p}.attn`, 1, 1, `${p}.k_flat`);
    const v = qkvPart(h1, `${p}.attn`, 2, 1, `${p}.v_flat`);
    const qh = toHeads(q, `${p}.q`);
    const presentK = g.op1('Concat', [pastKeyName(i), toHeads(k, `${p}.k`)], [intAttr('axis', 2)], presentKeyName(i));
    const presentV = g.op1('Concat', [pastValueName(i), toHeads(v, `${p}.v`)], [intAttr('axis', 2)], presentValueName(i));
    const kT = g.op1('Transpose', [presentK], [intsAttr('perm', [0, 1, 3, 2])]);
    const scores = g.op1('Add', [g.op1('MatMul', [qh, kT]), attnBias], [], `${p}.scores`);
    const probs = flooredSoftmax(g, consts, scores, p);
    const ctx = g.op1('Transpose', [g.op1('MatMul', [probs, presentV])], [intsAttr('perm', [0, 2, 1, 3])]);
    const merged = g.op1('Reshape', [ctx, flatShape], [], `${p}.ctx`);
    x = g.op1('Add', [x, linear(merged, `${p}.attn.wo`, `${p}.attn.bo`, d, d, `${p}.attn.out`)], [], `${p}.resid1`);
    // MLP.
    const h2 = layerNorm(x, `${p}.ln2`, `${p}.ln2.out`);
    const up = linear(h2, `${p}.mlp.w1`, `${p}.mlp.b1`, d, 4 * d, `${p}.mlp.up`);
    const act = g.op1('Gelu', [up], [stringAttr('approximate', 'tanh')], `${p}.mlp.gelu`);
    x = g.op1('Add', [x, linear(act, `${p}.mlp.w2`, `${p}.mlp.b2`, 4 * d, d, `${p}.mlp.out`)], [], `${p}.resid2`);
  }

  // Tied output: logits = LN_f(x) @ wte^T, as a 3-D MatMul that writes [batch, seq, vocab]
  // directly (a 2-D Gemm needs a Reshape after it, which copies the logits: ~2 ms per 8 x 256
  // batch). onnxruntime folds the Transpose of the wte initializer once, when the session loads.
  const xf = g.op1('Reshape', [layerNorm(x, 'lnf', 'lnf.out'), hiddenShape], [], 'lnf.out_3d');
  const logits = g.op1('MatMul', [xf, g.op1('Transpose', ['wte'], [intsAttr('perm', [1, 0])], 'wte_transposed')], [], 'logits');
  // Log-probability of each next input token (onnx-graph.ts).
  tokenLogprobsOutput(g, consts, logits);
  const { inputs, outputs } = decoderIO(vocab, layers, heads, headDim);

  return {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'lima-harness',
    producerVersion: String(ONNX_EXPORTER_VERSION),
    docString: 'GPT decoder with KV cache (lima-harness src/model/onnx-export.ts)',
    graph: { name: 'gpt_decoder', node: g.nodes, initializer: g.initializers, input: inputs, output: outputs },
    metadataProps: [{ key: 'model_config', value: JSON.stringify(model) }],
  };
}

/** Encodes the decoder graph to ONNX bytes. */
export function exportOnnxBytes(model: ModelConfig, weights: NamedWeights): Uint8Array {
  return encodeModel(buildOnnxModel(model, weights));
}

/** Writes the decoder graph for `model`/`weights` to `outFile` (atomically). */
export async function exportOnnx(model: ModelConfig, weights: NamedWeights, outFile: string): Promise<void> {
  await writeFileAtomic(outFile, exportOnnxBytes(model, weights));
}
