// Llama checkpoint -> ONNX decoder graph (opset 20, standard ops only), the math of HF
// LlamaForCausalLM with the weights of weights.ts's llama layout:
//   x = tok_embeddings[ids]
//   per layer: h = RMSNorm(x, attn_norm); x += attn(rope(h Wq), rope(h Wk), h Wv) Wo
//              h = RMSNorm(x, ffn_norm);  x += (silu(h Wgate) * (h Wup)) Wdown
//   logits = RMSNorm(x, norm) output^T        (output = tok_embeddings when tiedEmbeddings)
// RMSNorm(x) = x / sqrt(mean(x^2) + eps) * weight, written as Pow, ReduceMean, Add, Sqrt, Div,
// Mul (the pattern onnxruntime fuses into its own SimplifiedLayerNormalization kernel).
// RoPE in HF's rotate_half convention: within a head, dimension j < headDim/2 pairs with
// j + headDim/2; q' = q cos + rotate_half(q) sin, cos/sin gathered by position_ids from two
// [context, headDim] tables (cos duplicated; sin as [-sin, sin], so rotate_half(q) sin =
// swap_halves(q) * sinSigned). The tables are computed as transformers does in float32
// (inv_freq = 1 / theta^(2j/headDim), angle = position * inv_freq, each rounded to float32).
// Grouped-query attention without copying keys/values: query head h uses kv head
// floor(h / (heads/kvHeads)) (HF repeat_kv), so the queries [batch, heads, seq, hd] are viewed as
// [batch, kvHeads, rep*seq, hd] and multiplied with the kvHeads keys directly; the attention
// bias is tiled rep times along the query axis to match. The cache (past/present) stays at
// [batch, kvHeads, length, headDim], keys stored after rotation.
// Inputs, outputs, masking and the pre-softmax score floor are the GPT graph's (onnx-graph.ts).
import { llamaDims, type ModelConfig } from './config.ts';
import { checkWeights, type NamedWeights } from './weights.ts';
import type { ModelMsg } from './onnx-proto.ts';
import {
  attentionBias,
  decoderConstants,
  decoderIO,
  flooredSoftmax,
  GraphBuilder,
  intAttr,
  intsAttr,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
  tokenLogprobsOutput,
} from './onnx-graph.ts';

/**
 * RoPE tables [context, headDim] (row = position): cos duplicated over both halves, and sin
 * as [-sin, sin]. Values as transformers' LlamaRotaryEmbedding computes them in float32.
 */
export function ropeTables(context: number, headDim: number, theta: number): { cos: Float32Array; sinSigned: Float32Array } {
  const half = headDim / 2;
  const f = Math.fround;
  const invFreq = Array.from({ length: half }, (_, j) => f(1 / f(Math.pow(theta, f((2 * j) / headDim)))));
  const cos = new Float32Array(context * headDim);
  const sinSigned = new Float32Array(context * headDim);
  for (let p = 0; p < context; p++) {
    for (let j = 0; j < half; j++) {
      const angle = f(p * invFreq[j]!);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * headDim + j] = c;
      cos[p * headDim + half + j] = c;
      sinSigned[p * headDim + j] = -s;
      sinSigned[p * headDim + half + j] = s;
    }
  }
  return { cos, sinSigned };
}

/**
 * The llama decoder's ModelProto (validated config with arch 'llama' and weights matching it;
 * throws `weights: missing tensor ...` / wrong shape otherwise). `producerVersion` is the exporter
 * version onnx-export.ts records.
 */
export function buildLlamaOnnxModel(model: ModelConfig, weights: NamedWeights, producerVersion: string): ModelMsg {
  checkWeights(weights, model);
  const { vocab, dModel: d, heads, layers } = model;
  const { kvHeads, headDim, ffnHidden, ropeTheta, normEps, tiedEmbeddings } = llamaDims(model);
  const rep = heads / kvHeads;
  const qDim = heads * headDim;
  const kvDim = kvHeads * headDim;
  const w = (name: string): Float32Array => weights.get(name)!.data;
  const g = new GraphBuilder();

  const c = decoderConstants(g);
  const batchSeq = g.op1('Shape', ['input_ids'], [], 'batch_seq'); // [batch, seq]
  const hiddenShape = g.op1('Concat', [batchSeq, g.int64('const_model_dim', [1], [d])], [intAttr('axis', 0)], 'hidden_shape');
  const qSplitShape = g.op1('Concat', [batchSeq, g.int64('const_q_heads_dims', [2], [heads, headDim])], [intAttr('axis', 0)], 'q_split_shape');
  const kvSplitShape = g.op1('Concat', [batchSeq, g.int64('const_kv_heads_dims', [2], [kvHeads, headDim])], [intAttr('axis', 0)], 'kv_split_shape');
  const flatShape = g.int64('const_flat_shape', [2], [-1, d]);
  // Only with rep > 1 (an unused initializer makes onnxruntime print a warning per session).
  const groupedShape = rep > 1 ? g.int64('const_grouped_shape', [4], [0, kvHeads, -1, headDim]) : ''; // [batch, kvHeads, rep*seq, hd]
  const ungroupedShape = rep > 1 ? g.int64('const_ungrouped_shape', [4], [0, heads, -1, headDim]) : ''; // [batch, heads, seq, hd]
  const ctxFlatShape = g.int64('const_ctx_flat_shape', [2], [-1, qDim]);
  const halves = g.int64('const_rope_halves', [2], [headDim / 2, headDim / 2]);
  const two = g.float('const_two_f', [], new Float32Array([2]));
  const eps = g.float('const_rms_eps', [], new Float32Array([normEps]));

  // Attention bias [batch, 1, seq, total], repeated rep times along the query axis to match the
  // grouped queries [batch, kvHeads, rep*seq, hd] (row r*seq + s is query s of group member r).
  let attnBias = attentionBias(g, c);
  if (rep > 1) attnBias = g.op1('Tile', [attnBias, g.int64('const_bias_repeats', [4], [1, 1, rep, 1])], [], 'attn_bias_grouped');

  // RoPE factors for this batch's positions: [batch, seq, 1, hd], broadcast over heads.
  const tables = ropeTables(model.context, headDim, ropeTheta);
  g.float('rope_cos', [model.context, headDim], tables.cos);
  g.float('rope_sin', [model.context, headDim], tables.sinSigned);
  const axis2 = g.int64('const_axes_2', [1], [2]);
  const cos = g.op1('Unsqueeze', [g.op1('Gather', ['rope_cos', 'position_ids'], [intAttr('axis', 0)]), axis2], [], 'rope_cos_pos');
  const sin = g.op1('Unsqueeze', [g.op1('Gather', ['rope_sin', 'position_ids'], [intAttr('axis', 0)]), axis2], [], 'rope_sin_pos');
  /** t [batch, seq, n, hd] -> t cos + swap_halves(t) sinSigned. */
  const rope = (t: string, out: string): string => {
    const [lo, hi] = g.op('Split', [t, halves], [intAttr('axis', -1)], `${out}.halves`, 2) as [string, string];
    const swapped = g.op1('Concat', [hi, lo], [intAttr('axis', -1)]);
    return g.op1('Add', [g.op1('Mul', [t, cos]), g.op1('Mul', [swapped, sin])], [], out);
  };

  g.float('tok_embeddings', [vocab, d], w('tok_embeddings'));
  const embed = g.op1('Gather', ['tok_embeddings', 'input_ids'], [intAttr('axis', 0)], 'embed');
  let x = g.op1('Reshape', [embed, flatShape], [], 'embed_flat'); // [batch*seq, d]

  const rmsNorm = (input: string, weightName: string, out: string): string => {
    const meanSquare = g.op1('ReduceMean', [g.op1('Pow', [input, two]), c.lastAxis], [intAttr('keepdims', 1)]);
    const normed = g.op1('Div', [input, g.op1('Sqrt', [g.op1('Add', [meanSquare, eps])])]);
    return g.op1('Mul', [normed, g.float(weightName, [d], w(weightName))], [], out);
  };
  const matmul = (input: string, wName: string, inDim: number, outDim: number, out: string, scale = 1): string => {
    const data = scale === 1 ? w(wName) : w(wName).map((v) => v * scale);
    return g.op1('Gemm', [input, g.float(wName, [inDim, outDim], data)], [], out);
  };

  for (let i = 0; i < layers; i++) {
    const p = `h.${i}`;
    const h1 = rmsNorm(x, `${p}.attn_norm`, `${p}.attn_norm.out`);
    // The attention scale 1/sqrt(headDim) is folded into Wq (RoPE is linear, so scaling before it is the same).
    const q = matmul(h1, `${p}.attn.wq`, d, qDim, `${p}.q_flat`, 1 / Math.sqrt(headDim));
    const k = matmul(h1, `${p}.attn.wk`, d, kvDim, `${p}.k_flat`);
    const v = matmul(h1, `${p}.attn.wv`, d, kvDim, `${p}.v_flat`);
    const toHeads = (t: string, out: string): string => g.op1('Transpose', [t], [intsAttr('perm', [0, 2, 1, 3])], out);
    const qh = toHeads(rope(g.op1('Reshape', [q, qSplitShape]), `${p}.q_rot`), `${p}.q`); // [batch, heads, seq, hd]
    const qGrouped = rep > 1 ? g.op1('Reshape', [qh, groupedShape], [], `${p}.q_grouped`) : qh;
    const kh = toHeads(rope(g.op1('Reshape', [k, kvSplitShape]), `${p}.k_rot`), `${p}.k`);
    const vh = toHeads(g.op1('Reshape', [v, kvSplitShape]), `${p}.v`);
    const presentK = g.op1('Concat', [pastKeyName(i), kh], [intAttr('axis', 2)], presentKeyName(i));
    const presentV = g.op1('Concat', [pastValueName(i), vh], [intAttr('axis', 2)], presentValueName(i));
    const kT = g.op1('Transpose', [presentK], [intsAttr('perm', [0, 1, 3, 2])]);
    const scores = g.op1('Add', [g.op1('MatMul', [qGrouped, kT]), attnBias], [], `${p}.scores`);
    const probs = flooredSoftmax(g, c, scores, p);
    let ctx = g.op1('MatMul', [probs, presentV]); // [batch, kvHeads, rep*seq, hd]
    if (rep > 1) ctx = g.op1('Reshape', [ctx, ungroupedShape]);
    const merged = g.op1('Reshape', [g.op1('Transpose', [ctx], [intsAttr('perm', [0, 2, 1, 3])]), ctxFlatShape], [], `${p}.ctx`);
    x = g.op1('Add', [x, matmul(merged, `${p}.attn.wo`, qDim, d, `${p}.attn.out`)], [], `${p}.resid1`);

    const h2 = rmsNorm(x, `${p}.ffn_norm`, `${p}.ffn_norm.out`);
    const gate = matmul(h2, `${p}.mlp.gate`, d, ffnHidden, `${p}.mlp.gate_out`);
    const up = matmul(h2, `${p}.mlp.up`, d, ffnHidden, `${p}.mlp.up_out`);
    const act = g.op1('Mul', [g.op1('Mul', [gate, g.op1('Sigmoid', [gate])], [], `${p}.mlp.silu`), up], [], `${p}.mlp.act`);
    x = g.op1('Add', [x, matmul(act, `${p}.mlp.down`, ffnHidden, d, `${p}.mlp.out`)], [], `${p}.resid2`);
  }

  // logits = RMSNorm(x) @ output^T as a 3-D MatMul (as the GPT graph: no Reshape copy of the logits).
  const xf = g.op1('Reshape', [rmsNorm(x, 'norm', 'norm.out'), hiddenShape], [], 'norm.out_3d');
  const head = tiedEmbeddings ? 'tok_embeddings' : g.float('output', [vocab, d], w('output'));
  const logits = g.op1('MatMul', [xf, g.op1('Transpose', [head], [intsAttr('perm', [1, 0])], 'output_transposed')], [], 'logits');
  tokenLogprobsOutput(g, c, logits);
  const { inputs, outputs } = decoderIO(vocab, layers, kvHeads, headDim);

  return {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'lima-harness',
    producerVersion,
    docString: 'Llama decoder with KV cache (lima-harness src/model/onnx-llama.ts)',
    graph: { name: 'llama_decoder', node: g.nodes, initializer: g.initializers, input: inputs, output: outputs },
    metadataProps: [{ key: 'model_config', value: JSON.stringify(model) }],
  };
}
