// The GPT's training step as one ONNX graph: forward, response-only cross-entropy and the
// backward pass written out op by op (onnxruntime-node has no gradient kernels), so that
// onnxruntime's CPU kernels train the model. The math is the tfjs model's (src/model/gpt.ts) and
// the layout is weights.ts's; the gradients are the textbook ones, derived per op below.
//
// Inputs (all weights are inputs, not initializers: they change every step):
//   every tensor of weightShapes(model), under its own name
//   input_ids     [batch, seq] int64
//   targets       [batch*seq, 1] int64   (next token; any valid id where not scored)
//   loss_weights  [batch*seq, 1] float   mask / max(1, number of scored targets), so that the
//                                        loss is the mean NLL over scored targets (gpt.ts maskedNll)
//   dropout.{i}.attn, dropout.{i}.mlp  [batch*seq, d] float, for each layer i given a dropout
//                                        mask: 0 or 1/(1-rate) per element (residual dropout,
//                                        applied to the attention and MLP outputs as gpt.ts does)
// Outputs: loss (scalar), and grad.{name} for every weight, with the weight's shape.
//
// Right padding needs no attention mask: a causal query never sees the later padding keys, and
// padding rows carry loss weight 0, so they contribute exactly nothing (as in gpt.ts).
import type { ModelConfig } from './config.ts';
import { validateModelConfig } from './config.ts';
import { LAYER_NORM_EPS, weightShapes } from './weights.ts';
import { GraphBuilder, intAttr, intsAttr, floatAttr, MASKED_SCORE, SCORE_FLOOR, ONNX_IR_VERSION, ONNX_OPSET } from './onnx-export.ts';
import { DataType, encodeModel, valueInfo, type ModelMsg } from './onnx-proto.ts';

/** Bump when the training graph changes. */
export const ONNX_TRAIN_GRAPH_VERSION = 2;

/**
 * The tied wte's gradient has two row terms that onnxruntime would add with ScatterND
 * (reduction "add"), whose multi-threaded kernel sums repeated ids in a varying order: the same
 * step gave different wte gradients run to run on 2 threads. So the graph outputs the rows and
 * the caller adds them in a fixed order (addWteRows): grad.wte -= row n of WTE_TARGET_ROWS at
 * targets[n], grad.wte += row n of WTE_INPUT_ROWS at input_ids[n].
 */
export const WTE_TARGET_ROWS = 'wte_target_rows';
export const WTE_INPUT_ROWS = 'wte_input_rows';

/**
 * Completes grad.wte ([vocab, d], in place) with the row terms, in row order (deterministic).
 * targetRows and inputRows are [N, d]; targets and inputs hold N token ids.
 */
export function addWteRows(gradWte: Float32Array, d: number, targets: ArrayLike<number>, targetRows: Float32Array, inputs: ArrayLike<number>, inputRows: Float32Array): void {
  for (let n = 0; n < targets.length; n++) {
    const t = targets[n]! * d;
    const i = inputs[n]! * d;
    const r = n * d;
    for (let j = 0; j < d; j++) {
      gradWte[t + j] -= targetRows[r + j]!;
      gradWte[i + j] += inputRows[r + j]!;
    }
  }
}

export const gradName = (weight: string): string => `grad.${weight}`;
export const dropoutMaskName = (layer: number, which: 'attn' | 'mlp'): string => `dropout.${layer}.${which}`;

export interface TrainGraphOptions {
  /** Layers whose residual branches take dropout masks as inputs (length = layers). */
  dropoutLayers?: boolean[];
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

/**
 * Builds the training-step ModelProto for `model`. Gradients (grad.{name}) are of the returned
 * `loss`, the mean NLL over scored targets.
 * Source of the backward formulas: the chain rule per op; LayerNorm's input gradient is
 *   dx = invStd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = dy * gamma
 * and softmax's is dS = P * (dP - rowsum(dP * P)).
 */
export function buildTrainGraph(model: ModelConfig, options: TrainGraphOptions = {}): ModelMsg {
  validateModelConfig(model);
  const { dModel: d, heads, layers, context } = model;
  const headDim = d / heads;
  const dropoutLayers = options.dropoutLayers ?? new Array<boolean>(layers).fill(false);
  if (dropoutLayers.length !== layers) throw new Error(`buildTrainGraph: dropoutLayers has ${dropoutLayers.length} entries for ${layers} layers`);
  const g = new GraphBuilder();
  const op = (type: string, inputs: string[], attrs: Parameters<GraphBuilder['op1']>[2] = [], out?: string): string => g.op1(type, inputs, attrs, out);
  const scalar = (name: string, value: number): string => g.float(name, [], new Float32Array([value]));

  // Constants.
  const axis0 = g.int64('const_axes_0', [1], [0]);
  const axis1 = g.int64('const_axes_1', [1], [1]);
  const lastAxis = g.int64('const_axes_last', [1], [-1]);
  const zero = g.int64('const_zero', [], [0]);
  const one = g.int64('const_one', [], [1]);
  const zero1 = g.int64('const_zero_1d', [1], [0]);
  const flatShape = g.int64('const_flat_shape', [2], [-1, d]);
  const f = {
    zero: scalar('const_zero_f', 0),
    one: scalar('const_one_f', 1),
    masked: scalar('const_masked_f', MASKED_SCORE),
    floor: scalar('const_score_floor', SCORE_FLOOR),
    scale: scalar('const_attn_scale', 1 / Math.sqrt(headDim)),
    gelu2C: scalar('const_gelu_2c', 2 * GELU_C),
    gelu2KC: scalar('const_gelu_2kc', 2 * GELU_K * GELU_C),
    gelu6KC: scalar('const_gelu_6kc', 6 * GELU_K * GELU_C),
  };
  const sumRows = (t: string, out: string): string => op('ReduceSum', [t, axis0], [intAttr('keepdims', 0)], out);
  const meanLast = (t: string): string => op('ReduceMean', [t, lastAxis], [intAttr('keepdims', 1)]);

  // Shapes from the batch.
  const batchSeq = op('Shape', ['input_ids'], [], 'batch_seq'); // [B, T]
  const seqLen = op('Gather', [batchSeq, one], [intAttr('axis', 0)], 'seq_len'); // scalar T
  const seqLen1 = op('Unsqueeze', [seqLen, axis0], [], 'seq_len_1d');
  const headsShape = op('Concat', [batchSeq, g.int64('const_heads_dims', [2], [heads, headDim])], [intAttr('axis', 0)], 'heads_shape'); // [B, T, H, hd]
  const hiddenShape = op('Concat', [batchSeq, g.int64('const_model_dim', [1], [d])], [intAttr('axis', 0)], 'hidden_shape'); // [B, T, d]

  // Causal bias [T, T]: 0 where key <= query, MASKED_SCORE elsewhere.
  const positions = op('Range', [zero, seqLen, one], [], 'positions');
  const causal = op('LessOrEqual', [op('Unsqueeze', [positions, axis0]), op('Unsqueeze', [positions, axis1])], [], 'causal');
  const causalBias = op('Where', [causal, f.zero, f.masked], [], 'causal_bias');

  // ---- Forward ----
  const ids = op('Reshape', ['input_ids', g.int64('const_minus_one_1d', [1], [-1])], [], 'ids_flat'); // [N]
  const tokens = op('Gather', ['wte', ids], [intAttr('axis', 0)], 'tok_embed'); // [N, d]
  const posRows = op('Slice', ['wpe', zero1, seqLen1, axis0], [], 'pos_embed'); // [T, d]
  let x = op('Reshape', [op('Add', [op('Reshape', [tokens, hiddenShape]), posRows]), flatShape], [], 'embed'); // [N, d]

  interface LayerNormSaved { input: string; mean: string; invStd: string; gamma: string }
  const layerNorm = (input: string, prefix: string): { out: string; saved: LayerNormSaved } => {
    const [out, mean, invStd] = g.op('LayerNormalization', [input, `${prefix}.gamma`, `${prefix}.beta`], [intAttr('axis', -1), floatAttr('epsilon', LAYER_NORM_EPS)], `${prefix}.fwd`, 3);
    return { out: out!, saved: { input, mean: mean!, invStd: invStd!, gamma: `${prefix}.gamma` } };
  };
  const gemm = (a: string, b: string, c: string | undefined, transA: 0 | 1, transB: 0 | 1, out?: string): string =>
    op('Gemm', c ? [a, b, c] : [a, b], [intAttr('transA', transA), intAttr('transB', transB)], out);
  // A LayerNorm that feeds a linear layer: LN(x) W + b = xhat (gamma * W) + (beta W + b), with
  // xhat = (x - mean) * invStd. Folding gamma and beta into the [d, out] weights keeps the
  // LayerNorm's affine part and its gradients off the [N, d] activations (six fewer passes over
  // them per LayerNorm in the backward).
  interface NormLinearSaved { xhat: string; mean: string; invStd: string; gammaCol: string; wFolded: string }
  const ones = g.float('const_ones_d', [d], new Float32Array(d).fill(1));
  const zeros = g.float('const_zeros_d', [d], new Float32Array(d));
  const normLinear = (input: string, ln: string, w: string, b: string, out: string): { out: string; saved: NormLinearSaved } => {
    const [xhat, mean, invStd] = g.op('LayerNormalization', [input, ones, zeros], [intAttr('axis', -1), floatAttr('epsilon', LAYER_NORM_EPS)], `${ln}.fwd`, 3);
    const gammaCol = op('Unsqueeze', [`${ln}.gamma`, axis1], [], `${ln}.gamma_col`);
    const wFolded = op('Mul', [w, gammaCol], [], `${w}.folded`);
    const bFolded = op('Add', [op('MatMul', [`${ln}.beta`, w]), b], [], `${b}.folded`);
    return { out: gemm(xhat!, wFolded, bFolded, 0, 0, out), saved: { xhat: xhat!, mean: mean!, invStd: invStd!, gammaCol, wFolded } };
  };
  const toHeads = (t: string, out: string): string => op('Transpose', [op('Reshape', [t, headsShape])], [intsAttr('perm', [0, 2, 1, 3])], out); // [B, H, T, hd]
  const fromHeads = (t: string, out: string): string => op('Reshape', [op('Transpose', [t], [intsAttr('perm', [0, 2, 1, 3])]), flatShape], [], out); // [N, d]
  const transposeLast = (t: string): string => op('Transpose', [t], [intsAttr('perm', [0, 1, 3, 2])]);

  interface LayerSaved {
    ln1: NormLinearSaved; qs: string; kh: string; vh: string; probs: string; ctx: string;
    ln2: NormLinearSaved; upSq: string; sig: string; act: string;
  }
  const saved: LayerSaved[] = [];
  for (let i = 0; i < layers; i++) {
    const p = `h.${i}`;
    const ln1 = normLinear(x, `${p}.ln1`, `${p}.attn.wqkv`, `${p}.attn.bqkv`, `${p}.qkv`);
    const qkv = ln1.out;
    const [q, k, v] = g.op('Split', [qkv, g.int64(`${p}.const_split`, [3], [d, d, d])], [intAttr('axis', 1)], `${p}.qkv_split`, 3);
    const qs = op('Mul', [toHeads(q!, `${p}.q`), f.scale], [], `${p}.q_scaled`);
    const kh = toHeads(k!, `${p}.k`);
    const vh = toHeads(v!, `${p}.v`);
    const scores = op('Add', [op('MatMul', [qs, transposeLast(kh)]), causalBias], [], `${p}.scores`);
    // Scores raised to at least (row max - SCORE_FLOOR), as in the exported graph (fast exp). The
    // backward treats the Max as the identity: a floored key's weight is below e^-80 of the row's
    // largest, so its gradient terms vanish below float32 resolution either way.
    const floor = op('Sub', [op('ReduceMax', [scores, lastAxis], [intAttr('keepdims', 1)]), f.floor]);
    const probs = op('Softmax', [op('Max', [scores, floor])], [intAttr('axis', -1)], `${p}.probs`);
    const ctx = fromHeads(op('MatMul', [probs, vh]), `${p}.ctx`);
    let attnOut = gemm(ctx, `${p}.attn.wo`, `${p}.attn.bo`, 0, 0, `${p}.attn.out`);
    if (dropoutLayers[i]) attnOut = op('Mul', [attnOut, dropoutMaskName(i, 'attn')], [], `${p}.attn.dropped`);
    const x1 = op('Add', [x, attnOut], [], `${p}.resid1`);
    const ln2 = normLinear(x1, `${p}.ln2`, `${p}.mlp.w1`, `${p}.mlp.b1`, `${p}.mlp.up`);
    const up = ln2.out;
    // GELU, tanh form, written as u * sigmoid(2z) with z = c (u + k u^3) (0.5 (1 + tanh z) =
    // sigmoid(2z)): fewer elementwise passes than the tanh form, and sigmoid(2z) serves the backward.
    const upSq = op('Mul', [up, up], [], `${p}.mlp.up_sq`);
    const twoZ = op('Mul', [op('Add', [op('Mul', [upSq, f.gelu2KC]), f.gelu2C]), up]);
    const sig = op('Sigmoid', [twoZ], [], `${p}.mlp.sigmoid`);
    const act = op('Mul', [up, sig], [], `${p}.mlp.gelu`);
    let mlpOut = gemm(act, `${p}.mlp.w2`, `${p}.mlp.b2`, 0, 0, `${p}.mlp.out`);
    if (dropoutLayers[i]) mlpOut = op('Mul', [mlpOut, dropoutMaskName(i, 'mlp')], [], `${p}.mlp.dropped`);
    x = op('Add', [x1, mlpOut], [], `${p}.resid2`);
    saved.push({ ln1: ln1.saved, qs, kh, vh, probs, ctx, ln2: ln2.saved, upSq, sig, act });
  }
  const lnf = layerNorm(x, 'lnf');
  const logits = gemm(lnf.out, op('Transpose', ['wte'], [intsAttr('perm', [1, 0])], 'wte_t'), undefined, 0, 0, 'logits'); // [N, V], tied output projection

  // Loss: sum(loss_weights * -ln p(target)).
  // P = softmax(logits) serves the loss and the backward. -ln p(target) = lse - logit(target),
  // with lse = max(logits) - ln max(P) (max(P) = 1 / sum exp(logit - max) >= 1/V: no underflow).
  // Softmax, two row maxima and a gather measured faster than LogSoftmax then Exp.
  const probsOut = op('Softmax', [logits], [intAttr('axis', -1)], 'probs_out');
  const rowMax = (t: string): string => op('ReduceMax', [t, lastAxis], [intAttr('keepdims', 1)]);
  const logSumExp = op('Sub', [rowMax(logits), op('Log', [rowMax(probsOut)])], [], 'log_sum_exp'); // [N, 1]
  const nll = op('Sub', [logSumExp, op('GatherElements', [logits, 'targets'], [intAttr('axis', 1)])], [], 'target_nll'); // [N, 1]
  op('ReduceSum', [op('Mul', [nll, 'loss_weights'])], [intAttr('keepdims', 0)], 'loss');

  // ---- Backward ----
  // d loss / d logits = diag(w) (P - Y), P = softmax, Y = onehot(target), w = the rows' loss
  // weights. Neither w nor Y touches an [N, V] tensor: with h = LN_f output,
  //   d wte (output side) = P^T (w h) - Y^T (w h)   (the second term a scatter of N rows)
  //   d h                 = w (P wte - wte[target])
  const targetIds = op('Reshape', ['targets', g.int64('const_minus_one_targets', [1], [-1])], [], 'target_ids');
  const weightedH = op('Mul', [lnf.out, 'loss_weights'], [], 'lnf_weighted');
  // The dense term only; the row terms leave the graph (see the outputs below).
  gemm(probsOut, weightedH, undefined, 1, 0, gradName('wte')); // [V, d]
  op('Identity', [weightedH], [], WTE_TARGET_ROWS);
  const dLnf = op('Mul', [op('Sub', [gemm(probsOut, 'wte', undefined, 0, 0), op('Gather', ['wte', targetIds], [intAttr('axis', 0)])]), 'loss_weights'], [], 'd_lnf'); // [N, d]

  /** LayerNorm's input gradient from the gradient of xhat. */
  const normalizeBack = (dxhat: string, xhat: string, invStd: string, out: string): string => {
    const centered = op('Sub', [op('Sub', [dxhat, meanLast(dxhat)]), op('Mul', [xhat, meanLast(op('Mul', [dxhat, xhat]))])]);
    return op('Mul', [centered, invStd], [], out);
  };
  const layerNormBack = (dy: string, s: LayerNormSaved, prefix: string): string => {
    const xhat = op('Mul', [op('Sub', [s.input, s.mean]), s.invStd], [], `${prefix}.xhat`);
    sumRows(op('Mul', [dy, xhat]), gradName(`${prefix}.gamma`));
    sumRows(dy, gradName(`${prefix}.beta`));
    return normalizeBack(op('Mul', [dy, s.gamma]), xhat, s.invStd, `${prefix}.d_input`);
  };
  /** Gradients of normLinear, through wFolded = gamma * W and bFolded = beta W + b:
   *  dW = gamma dWfolded + beta (outer) db, dgamma = rowsum(dWfolded * W), dbeta = W db. */
  const normLinearBack = (dOut: string, s: NormLinearSaved, ln: string, w: string, b: string): string => {
    const dWFolded = gemm(s.xhat, dOut, undefined, 1, 0, `${w}.d_folded`);
    const db = sumRows(dOut, gradName(b));
    const betaOuter = op('Mul', [op('Unsqueeze', [`${ln}.beta`, axis1]), op('Unsqueeze', [db, axis0])]);
    op('Add', [op('Mul', [dWFolded, s.gammaCol]), betaOuter], [], gradName(w));
    op('ReduceSum', [op('Mul', [dWFolded, w]), axis1], [intAttr('keepdims', 0)], gradName(`${ln}.gamma`));
    op('MatMul', [w, db], [], gradName(`${ln}.beta`));
    return normalizeBack(gemm(dOut, s.wFolded, undefined, 0, 1), s.xhat, s.invStd, `${ln}.d_input`);
  };
  /** Gradients of y = x @ W + b: writes grad W and grad b, returns dx. */
  const linearBack = (dy: string, input: string, w: string, b: string): string => {
    gemm(input, dy, undefined, 1, 0, gradName(w));
    sumRows(dy, gradName(b));
    return gemm(dy, w, undefined, 0, 1, `${w}.d_input`);
  };

  let dx = layerNormBack(dLnf, lnf.saved, 'lnf');
  for (let i = layers - 1; i >= 0; i--) {
    const p = `h.${i}`;
    const s = saved[i]!;
    // MLP branch.
    const dMlpOut = dropoutLayers[i] ? op('Mul', [dx, dropoutMaskName(i, 'mlp')]) : dx;
    const dAct = linearBack(dMlpOut, s.act, `${p}.mlp.w2`, `${p}.mlp.b2`);
    // GELU'(u) = s + u s (1 - s) 2z', s = sigmoid(2z), 2z' = 2c + 6ck u^2; u s is the GELU output.
    const slope = op('Mul', [op('Mul', [s.act, op('Sub', [f.one, s.sig])]), op('Add', [op('Mul', [s.upSq, f.gelu6KC]), f.gelu2C])]);
    const dUp = op('Mul', [dAct, op('Add', [s.sig, slope])], [], `${p}.mlp.d_up`);
    const dx1 = op('Add', [dx, normLinearBack(dUp, s.ln2, `${p}.ln2`, `${p}.mlp.w1`, `${p}.mlp.b1`)], [], `${p}.d_resid1`);
    // Attention branch.
    const dAttnOut = dropoutLayers[i] ? op('Mul', [dx1, dropoutMaskName(i, 'attn')]) : dx1;
    const dCtx = toHeads(linearBack(dAttnOut, s.ctx, `${p}.attn.wo`, `${p}.attn.bo`), `${p}.d_ctx`);
    const dProbs = op('MatMul', [dCtx, transposeLast(s.vh)]);
    const dV = op('MatMul', [transposeLast(s.probs), dCtx]);
    const dScores = op('Mul', [s.probs, op('Sub', [dProbs, op('ReduceSum', [op('Mul', [dProbs, s.probs]), lastAxis], [intAttr('keepdims', 1)])])], [], `${p}.d_scores`);
    const dQ = op('Mul', [op('MatMul', [dScores, s.kh]), f.scale]);
    const dK = op('MatMul', [transposeLast(dScores), s.qs]);
    const dQkv = op('Concat', [fromHeads(dQ, `${p}.d_q`), fromHeads(dK, `${p}.d_k`), fromHeads(dV, `${p}.d_v`)], [intAttr('axis', 1)], `${p}.d_qkv`);
    dx = op('Add', [dx1, normLinearBack(dQkv, s.ln1, `${p}.ln1`, `${p}.attn.wqkv`, `${p}.attn.bqkv`)], [], `${p}.d_resid0`);
  }
  // Embeddings: positions summed over the batch and zero-padded to the context; token rows go
  // out as they are, to be added at their ids by the caller (with wte_target_rows).
  const dPos = op('ReduceSum', [op('Reshape', [dx, hiddenShape]), axis0], [intAttr('keepdims', 0)], 'd_pos'); // [T, d]
  const padRows = op('Sub', [g.int64('const_context_1d', [1], [context]), seqLen1]);
  op('Pad', [dPos, op('Concat', [g.int64('const_zero_2', [2], [0, 0]), padRows, zero1], [intAttr('axis', 0)])], [], gradName('wpe'));
  op('Identity', [dx], [], WTE_INPUT_ROWS);

  const shapes = weightShapes(model);
  const inputs = [
    ...shapes.map(([name, shape]) => valueInfo(name, DataType.FLOAT, shape)),
    valueInfo('input_ids', DataType.INT64, ['batch', 'seq']),
    valueInfo('targets', DataType.INT64, ['tokens', 1]),
    valueInfo('loss_weights', DataType.FLOAT, ['tokens', 1]),
  ];
  for (let i = 0; i < layers; i++) {
    if (dropoutLayers[i]) inputs.push(valueInfo(dropoutMaskName(i, 'attn'), DataType.FLOAT, ['tokens', d]), valueInfo(dropoutMaskName(i, 'mlp'), DataType.FLOAT, ['tokens', d]));
  }
  const outputs = [
    valueInfo('loss', DataType.FLOAT, []),
    ...shapes.map(([name, shape]) => valueInfo(gradName(name), DataType.FLOAT, shape)),
    valueInfo(WTE_TARGET_ROWS, DataType.FLOAT, ['tokens', d]),
    valueInfo(WTE_INPUT_ROWS, DataType.FLOAT, ['tokens', d]),
  ];
  return {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'lima-harness',
    producerVersion: String(ONNX_TRAIN_GRAPH_VERSION),
    docString: 'GPT training step: loss and gradients (lima-harness src/model/onnx-train.ts)',
    graph: { name: 'gpt_train_step', node: g.nodes, initializer: g.initializers, input: inputs, output: outputs },
    metadataProps: [{ key: 'model_config', value: JSON.stringify(model) }],
  };
}

/** The training-step graph as ONNX bytes. */
export function trainGraphBytes(model: ModelConfig, options: TrainGraphOptions = {}): Uint8Array {
  return encodeModel(buildTrainGraph(model, options));
}
