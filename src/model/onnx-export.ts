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
import type { ModelConfig } from './config.ts';
import { validateModelConfig } from './config.ts';
import { checkWeights, LAYER_NORM_EPS, type NamedWeights } from './weights.ts';
import { AttrType, DataType, encodeModel, valueInfo, type AttributeMsg, type NodeMsg, type TensorMsg, type ModelMsg } from './onnx-proto.ts';
import { writeFileAtomic } from '../util/atomic.ts';

export const ONNX_OPSET = 20; // Gelu(approximate="tanh") needs 20; LayerNormalization needs 17
export const ONNX_IR_VERSION = 9;
/** Bump when the graph changes, so cached .onnx files are re-exported. */
export const ONNX_EXPORTER_VERSION = 5;
/** Added to attention scores of masked keys, so they lose to every allowed key whatever its score. */
export const MASKED_SCORE = -1e9;
/**
 * Before the softmax, scores are raised to at least (row max - SCORE_FLOOR). onnxruntime's exp
 * runs ~3x slower on inputs whose result underflows to a subnormal (below ~-87), which every
 * masked key hit: the softmax was a quarter of scoring time. A key 80 below the row max has weight e^-80
 * (1.8e-35), far below float32 resolution, so the output is unchanged. A fixed mask of -60
 * would be as fast but wrong wherever a masked key's score beats the best allowed one by ~60.
 */
export const SCORE_FLOOR = 80;

export const pastKeyName = (layer: number): string => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number): string => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number): string => `present.${layer}.key`;
export const presentValueName = (layer: number): string => `present.${layer}.value`;

function bytesOf(data: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Builds a node list and initializers with unique value names (also used by onnx-train.ts). */
export class GraphBuilder {
  readonly nodes: NodeMsg[] = [];
  readonly initializers: TensorMsg[] = [];
  private counter = 0;

  float(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, rawData: bytesOf(data) });
    return name;
  }

  int64(name: string, dims: number[], values: number[]): string {
    this.initializers.push({ name, dims, dataType: DataType.INT64, rawData: bytesOf(BigInt64Array.from(values.map(BigInt))) });
    return name;
  }

  op(opType: string, inputs: string[], attrs: AttributeMsg[] = [], outName?: string, outputs = 1): string[] {
    const base = outName ?? `${opType.toLowerCase()}_${this.counter++}`;
    const outs = outputs === 1 ? [base] : Array.from({ length: outputs }, (_, i) => `${base}_${i}`);
    this.nodes.push({ input: inputs, output: outs, name: `${base}_node`, opType, attribute: attrs });
    return outs;
  }

  /** Single-output op. */
  op1(opType: string, inputs: string[], attrs: AttributeMsg[] = [], outName?: string): string {
    return this.op(opType, inputs, attrs, outName)[0]!;
  }
}

export const intAttr = (name: string, i: number): AttributeMsg => ({ name, type: AttrType.INT, i });
export const intsAttr = (name: string, ints: number[]): AttributeMsg => ({ name, type: AttrType.INTS, ints });
export const floatAttr = (name: string, f: number): AttributeMsg => ({ name, type: AttrType.FLOAT, f });
export const stringAttr = (name: string, s: string): AttributeMsg => ({ name, type: AttrType.STRING, s: new TextEncoder().encode(s) });

/** Builds the ModelProto (as a plain object) for a config and its weights. */
export function buildOnnxModel(model: ModelConfig, weights: NamedWeights): ModelMsg {
  validateModelConfig(model);
  checkWeights(weights, model);
  const { vocab, dModel: d, heads, layers } = model;
  const headDim = d / heads;
  const w = (name: string): Float32Array => weights.get(name)!.data;
  const g = new GraphBuilder();

  // Constants.
  const one = g.int64('const_one', [], [1]);
  const zero = g.int64('const_zero', [], [0]);
  const axis0 = g.int64('const_axes_0', [1], [0]);
  const axis1 = g.int64('const_axes_1', [1], [1]);
  const axes12 = g.int64('const_axes_1_2', [2], [1, 2]);
  const zeroF = g.float('const_zero_f', [], new Float32Array([0]));
  const maskedF = g.float('const_masked_f', [], new Float32Array([MASKED_SCORE]));
  const scoreFloor = g.float('const_score_floor', [], new Float32Array([SCORE_FLOOR]));
  const lastAxis = g.int64('const_axes_last', [1], [-1]);
  // The residual stream is kept 2-D [batch*seq, d] so every linear layer is one Gemm with its
  // bias fused (onnxruntime only fuses MatMul+Add into Gemm for 2-D operands).
  const batchSeq = g.op1('Shape', ['input_ids'], [], 'batch_seq'); // [batch, seq]
  const headsShape = g.op1('Concat', [batchSeq, g.int64('const_heads_dims', [2], [heads, headDim])], [intAttr('axis', 0)], 'heads_shape');
  const hiddenShape = g.op1('Concat', [batchSeq, g.int64('const_model_dim', [1], [d])], [intAttr('axis', 0)], 'hidden_shape');
  const flatShape = g.int64('const_flat_shape', [2], [-1, d]);

  // Attention bias [batch, 1, seq, total]: 0 where a query may look, MASKED_SCORE elsewhere. Built
  // as causal [seq, total] + padding [batch, 1, 1, total]: one broadcast Add over the full tensor
  // (an And then a Where over it measured ~1 ms slower per 8 x 256 batch).
  const seqLen = g.op1('Gather', [g.op1('Shape', ['input_ids']), one], [intAttr('axis', 0)], 'seq_len');
  const totalLen = g.op1('Gather', [g.op1('Shape', ['attention_mask']), one], [intAttr('axis', 0)], 'total_len');
  const pastLen = g.op1('Sub', [totalLen, seqLen], [], 'past_len');
  const queryPos = g.op1('Unsqueeze', [g.op1('Range', [pastLen, totalLen, one]), axis1], [], 'query_pos'); // [seq, 1]
  const keyPos = g.op1('Unsqueeze', [g.op1('Range', [zero, totalLen, one]), axis0], [], 'key_pos'); // [1, total]
  const causal = g.op1('LessOrEqual', [keyPos, queryPos], [], 'causal'); // [seq, total]
  const keyReal = g.op1('Unsqueeze', [g.op1('Cast', ['attention_mask'], [intAttr('to', DataType.BOOL)]), axes12], [], 'key_real'); // [batch,1,1,total]
  const maskedWhere = (allowed: string, out: string): string => g.op1('Where', [allowed, zeroF, maskedF], [], out);
  const attnBias = g.op1('Add', [maskedWhere(causal, 'causal_bias'), maskedWhere(keyReal, 'padding_bias')], [], 'attn_bias');

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
    const floor = g.op1('Sub', [g.op1('ReduceMax', [scores, lastAxis], [intAttr('keepdims', 1)]), scoreFloor], [], `${p}.score_floor`);
    const probs = g.op1('Softmax', [g.op1('Max', [scores, floor])], [intAttr('axis', -1)], `${p}.probs`);
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
  // Log-probability of each next input token. Fetching only this [batch, seq-1] output made
  // scoring ~12% faster than copying the logits (16 MB per 8 x 256 batch) out to JS. LogSoftmax is
  // one fused, stable pass (ReduceLogSumExp measured 4x slower). The next ids are padded with one
  // 0 at the end so the gather reads every row, and the last row is then dropped.
  const logProbs = g.op1('LogSoftmax', [logits], [intAttr('axis', -1)], 'log_probs');
  const nextIds = g.op1('Slice', ['input_ids', g.int64('const_one_1d', [1], [1]), g.int64('const_int64_max', [1], [Number.MAX_SAFE_INTEGER]), axis1], [], 'next_ids');
  const nextIdsPadded = g.op1('Pad', [nextIds, g.int64('const_pad_end', [4], [0, 0, 0, 1])], [], 'next_ids_padded'); // [batch, seq]
  const nextLogProbs = g.op1('GatherElements', [logProbs, g.op1('Unsqueeze', [nextIdsPadded, lastAxis])], [intAttr('axis', 2)]); // [batch, seq, 1]
  const minusOne = g.int64('const_minus_one_1d', [1], [-1]);
  g.op1('Slice', [g.op1('Squeeze', [nextLogProbs, lastAxis]), g.int64('const_zero_1d', [1], [0]), minusOne, axis1], [], 'token_logprobs');

  const pastDims = ['batch', heads, 'past', headDim];
  const presentDims = ['batch', heads, 'total', headDim];
  const inputs = [
    valueInfo('input_ids', DataType.INT64, ['batch', 'seq']),
    valueInfo('attention_mask', DataType.INT64, ['batch', 'total']),
    valueInfo('position_ids', DataType.INT64, ['batch', 'seq']),
  ];
  const outputs = [valueInfo('logits', DataType.FLOAT, ['batch', 'seq', vocab]), valueInfo('token_logprobs', DataType.FLOAT, ['batch', 'seq_minus_1'])];
  for (let i = 0; i < layers; i++) {
    inputs.push(valueInfo(pastKeyName(i), DataType.FLOAT, pastDims), valueInfo(pastValueName(i), DataType.FLOAT, pastDims));
    outputs.push(valueInfo(presentKeyName(i), DataType.FLOAT, presentDims), valueInfo(presentValueName(i), DataType.FLOAT, presentDims));
  }

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
