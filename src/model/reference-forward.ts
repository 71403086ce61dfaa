// A plain-TypeScript forward pass of the GPT in weights.ts (Float32Array loops, float64
// accumulators), written for clarity, not speed: the ground truth the ONNX export is checked
// against. Same inputs and outputs as the exported graph, including the KV cache.
import type { ModelConfig } from './config.ts';
import { LAYER_NORM_EPS, type NamedWeights } from './weights.ts';

/** Per-layer keys and values, each [batch, heads, length, headDim] row-major. */
export interface KvCache {
  length: number;
  keys: Float32Array[];
  values: Float32Array[];
}

export interface ForwardInput {
  /** [batch][seq] */
  inputIds: number[][];
  /** [batch][past + seq]: 1 = real token, 0 = padding. */
  attentionMask: number[][];
  /** [batch][seq] */
  positionIds: number[][];
  past?: KvCache;
}

export interface ForwardOutput {
  /** [batch, seq, vocab] */
  logits: Float32Array;
  present: KvCache;
}

function layerNorm(x: Float32Array, gamma: Float32Array, beta: Float32Array): Float32Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let variance = 0;
  for (let i = 0; i < n; i++) variance += (x[i]! - mean) ** 2;
  variance /= n;
  const inv = 1 / Math.sqrt(variance + LAYER_NORM_EPS);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i]! - mean) * inv * gamma[i]! + beta[i]!;
  return out;
}

/** y = x @ W + b with W [in, out]. */
function linear(x: Float32Array, w: Float32Array, b: Float32Array, outDim: number): Float32Array {
  const out = new Float32Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let sum = b[o]!;
    for (let i = 0; i < x.length; i++) sum += x[i]! * w[i * outDim + o]!;
    out[o] = sum;
  }
  return out;
}

function gelu(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
}

export function referenceForward(model: ModelConfig, weights: NamedWeights, input: ForwardInput): ForwardOutput {
  const { vocab, dModel: d, heads, layers } = model;
  const headDim = d / heads;
  const w = (name: string): Float32Array => weights.get(name)!.data;
  const batch = input.inputIds.length;
  const seq = input.inputIds[0]!.length;
  const pastLen = input.past?.length ?? 0;
  const total = pastLen + seq;

  // Hidden states per (b, s).
  const hidden: Float32Array[][] = [];
  for (let b = 0; b < batch; b++) {
    const row: Float32Array[] = [];
    for (let s = 0; s < seq; s++) {
      const tok = input.inputIds[b]![s]!;
      const pos = input.positionIds[b]![s]!;
      const x = new Float32Array(d);
      for (let j = 0; j < d; j++) x[j] = w('wte')[tok * d + j]! + w('wpe')[pos * d + j]!;
      row.push(x);
    }
    hidden.push(row);
  }

  const present: KvCache = { length: total, keys: [], values: [] };
  const kvIndex = (b: number, h: number, t: number, j: number): number => ((b * heads + h) * total + t) * headDim + j;
  const pastIndex = (b: number, h: number, t: number, j: number): number => ((b * heads + h) * pastLen + t) * headDim + j;

  for (let l = 0; l < layers; l++) {
    const p = `h.${l}`;
    const keys = new Float32Array(batch * heads * total * headDim);
    const values = new Float32Array(keys.length);
    const queries: Float32Array[][] = [];
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        for (let t = 0; t < pastLen; t++) {
          for (let j = 0; j < headDim; j++) {
            keys[kvIndex(b, h, t, j)] = input.past!.keys[l]![pastIndex(b, h, t, j)]!;
            values[kvIndex(b, h, t, j)] = input.past!.values[l]![pastIndex(b, h, t, j)]!;
          }
        }
      }
      const qRow: Float32Array[] = [];
      for (let s = 0; s < seq; s++) {
        const qkv = linear(layerNorm(hidden[b]![s]!, w(`${p}.ln1.gamma`), w(`${p}.ln1.beta`)), w(`${p}.attn.wqkv`), w(`${p}.attn.bqkv`), 3 * d);
        qRow.push(qkv.slice(0, d));
        for (let h = 0; h < heads; h++) {
          for (let j = 0; j < headDim; j++) {
            keys[kvIndex(b, h, pastLen + s, j)] = qkv[d + h * headDim + j]!;
            values[kvIndex(b, h, pastLen + s, j)] = qkv[2 * d + h * headDim + j]!;
          }
        }
      }
      queries.push(qRow);
    }
    present.keys.push(keys);
    present.values.push(values);

    const scale = 1 / Math.sqrt(headDim);
    for (let b = 0; b < batch; b++) {
      for (let s = 0; s < seq; s++) {
        const ctx = new Float32Array(d);
        for (let h = 0; h < heads; h++) {
          const scores: number[] = [];
          const allowed: number[] = [];
          for (let t = 0; t < total; t++) {
            if (t > pastLen + s || input.attentionMask[b]![t] === 0) continue;
            let dot = 0;
            for (let j = 0; j < headDim; j++) dot += queries[b]![s]![h * headDim + j]! * keys[kvIndex(b, h, t, j)]!;
            scores.push(dot * scale);
            allowed.push(t);
          }
          // A row with every key masked (a padded query) gets uniform weights, like the graph.
          if (allowed.length === 0) {
            for (let t = 0; t < total; t++) allowed.push(t), scores.push(0);
          }
          const max = Math.max(...scores);
          const exps = scores.map((v) => Math.exp(v - max));
          const sum = exps.reduce((a, c) => a + c, 0);
          for (let j = 0; j < headDim; j++) {
            let acc = 0;
            allowed.forEach((t, n) => (acc += (exps[n]! / sum) * values[kvIndex(b, h, t, j)]!));
            ctx[h * headDim + j] = acc;
          }
        }
        const attnOut = linear(ctx, w(`${p}.attn.wo`), w(`${p}.attn.bo`), d);
        const x = hidden[b]![s]!;
        for (let j = 0; j < d; j++) x[j]! += attnOut[j]!;
        const up = linear(layerNorm(x, w(`${p}.ln2.gamma`), w(`${p}.ln2.beta`)), w(`${p}.mlp.w1`), w(`${p}.mlp.b1`), 4 * d);
        for (let j = 0; j < up.length; j++) up[j] = gelu(up[j]!);
        const down = linear(up, w(`${p}.mlp.w2`), w(`${p}.mlp.b2`), d);
        for (let j = 0; j < d; j++) x[j]! += down[j]!;
      }
    }
  }

  const logits = new Float32Array(batch * seq * vocab);
  const wte = w('wte');
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const xf = layerNorm(hidden[b]![s]!, w('lnf.gamma'), w('lnf.beta'));
      for (let t = 0; t < vocab; t++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += xf[j]! * wte[t * d + j]!;
        logits[(b * seq + s) * vocab + t] = dot;
      }
    }
  }
  return { logits, present };
}
