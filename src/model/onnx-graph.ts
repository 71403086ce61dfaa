// Pieces shared by the ONNX decoder graphs (onnx-export.ts: our GPT; onnx-llama.ts: llama) and
// the training graph (onnx-train.ts): the graph builder, attribute helpers, the cache tensor
// names, and the parts every decoder graph has in common (the attention bias from
// attention_mask, the token_logprobs output, the inputs/outputs list).
import { AttrType, DataType, valueInfo, type AttributeMsg, type NodeMsg, type TensorMsg, type ValueInfoMsg } from './onnx-proto.ts';

export const ONNX_OPSET = 20; // Gelu(approximate="tanh") needs 20; LayerNormalization needs 17
export const ONNX_IR_VERSION = 9;
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

/** Constant initializer names a decoder graph's shared parts use (decoderConstants creates them). */
export interface DecoderConstants {
  one: string;
  zero: string;
  axis0: string;
  axis1: string;
  axes12: string;
  zeroF: string;
  maskedF: string;
  scoreFloor: string;
  lastAxis: string;
}

/** Creates the scalar/axis constants, in the order the GPT graph has always declared them. */
export function decoderConstants(g: GraphBuilder): DecoderConstants {
  return {
    one: g.int64('const_one', [], [1]),
    zero: g.int64('const_zero', [], [0]),
    axis0: g.int64('const_axes_0', [1], [0]),
    axis1: g.int64('const_axes_1', [1], [1]),
    axes12: g.int64('const_axes_1_2', [2], [1, 2]),
    zeroF: g.float('const_zero_f', [], new Float32Array([0])),
    maskedF: g.float('const_masked_f', [], new Float32Array([MASKED_SCORE])),
    scoreFloor: g.float('const_score_floor', [], new Float32Array([SCORE_FLOOR])),
    lastAxis: g.int64('const_axes_last', [1], [-1]),
  };
}

/**
 * Attention bias `attn_bias` [batch, 1, seq, total]: 0 where a query may look, MASKED_SCORE
 * elsewhere. Query s (absolute position past+s) sees keys 0..past+s whose attention_mask is 1.
 * Built as causal [seq, total] + padding [batch, 1, 1, total]: one broadcast Add over the full
 * tensor (an And then a Where over it measured ~1 ms slower per 8 x 256 batch).
 */
export function attentionBias(g: GraphBuilder, c: DecoderConstants): string {
  const seqLen = g.op1('Gather', [g.op1('Shape', ['input_ids']), c.one], [intAttr('axis', 0)], 'seq_len');
  const totalLen = g.op1('Gather', [g.op1('Shape', ['attention_mask']), c.one], [intAttr('axis', 0)], 'total_len');
  const pastLen = g.op1('Sub', [totalLen, seqLen], [], 'past_len');
  const queryPos = g.op1('Unsqueeze', [g.op1('Range', [pastLen, totalLen, c.one]), c.axis1], [], 'query_pos'); // [seq, 1]
  const keyPos = g.op1('Unsqueeze', [g.op1('Range', [c.zero, totalLen, c.one]), c.axis0], [], 'key_pos'); // [1, total]
  const causal = g.op1('LessOrEqual', [keyPos, queryPos], [], 'causal'); // [seq, total]
  const keyReal = g.op1('Unsqueeze', [g.op1('Cast', ['attention_mask'], [intAttr('to', DataType.BOOL)]), c.axes12], [], 'key_real'); // [batch,1,1,total]
  const maskedWhere = (allowed: string, out: string): string => g.op1('Where', [allowed, c.zeroF, c.maskedF], [], out);
  return g.op1('Add', [maskedWhere(causal, 'causal_bias'), maskedWhere(keyReal, 'padding_bias')], [], 'attn_bias');
}

/**
 * Softmax over the last axis of `scores` (bias already added) after raising every score to at
 * least (row max - SCORE_FLOOR): see SCORE_FLOOR.
 */
export function flooredSoftmax(g: GraphBuilder, c: DecoderConstants, scores: string, prefix: string): string {
  const floor = g.op1('Sub', [g.op1('ReduceMax', [scores, c.lastAxis], [intAttr('keepdims', 1)]), c.scoreFloor], [], `${prefix}.score_floor`);
  return g.op1('Softmax', [g.op1('Max', [scores, floor])], [intAttr('axis', -1)], `${prefix}.probs`);
}

/**
 * The `token_logprobs` output [batch, seq-1] = ln p(input_ids[:, t+1] | tokens up to t), from
 * `logits` [batch, seq, vocab]. Fetching only this output made scoring ~12% faster than copying
 * the logits (16 MB per 8 x 256 batch) out to JS. LogSoftmax is one fused, stable pass
 * (ReduceLogSumExp measured 4x slower). The next ids are padded with one 0 at the end so the
 * gather reads every row, and the last row is then dropped.
 */
export function tokenLogprobsOutput(g: GraphBuilder, c: DecoderConstants, logits: string): string {
  const logProbs = g.op1('LogSoftmax', [logits], [intAttr('axis', -1)], 'log_probs');
  const nextIds = g.op1('Slice', ['input_ids', g.int64('const_one_1d', [1], [1]), g.int64('const_int64_max', [1], [Number.MAX_SAFE_INTEGER]), c.axis1], [], 'next_ids');
  const nextIdsPadded = g.op1('Pad', [nextIds, g.int64('const_pad_end', [4], [0, 0, 0, 1])], [], 'next_ids_padded'); // [batch, seq]
  const nextLogProbs = g.op1('GatherElements', [logProbs, g.op1('Unsqueeze', [nextIdsPadded, c.lastAxis])], [intAttr('axis', 2)]); // [batch, seq, 1]
  const minusOne = g.int64('const_minus_one_1d', [1], [-1]);
  return g.op1('Slice', [g.op1('Squeeze', [nextLogProbs, c.lastAxis]), g.int64('const_zero_1d', [1], [0]), minusOne, c.axis1], [], 'token_logprobs');
}

/**
 * The decoder's graph inputs and outputs: input_ids, attention_mask, position_ids and per layer
 * past_key_values.{i}.key/value [batch, cacheHeads, past, headDim] -> logits [batch, seq, vocab],
 * token_logprobs, present.{i}.key/value [batch, cacheHeads, total, headDim].
 */
export function decoderIO(vocab: number, layers: number, cacheHeads: number, headDim: number): { inputs: ValueInfoMsg[]; outputs: ValueInfoMsg[] } {
  const pastDims = ['batch', cacheHeads, 'past', headDim];
  const presentDims = ['batch', cacheHeads, 'total', headDim];
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
  return { inputs, outputs };
}
