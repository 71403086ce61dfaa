// A plain-TypeScript forward pass of the GPT in weights.ts (Float32Array loops, float64
// accumulators), written for clarity, not speed: the ground truth the ONNX export is checked
// against. Same inputs and outputs as the exported graph, including the KV cache.
// referenceForward dispatches on model.arch: the llama forward (HF LlamaForCausalLM's math,
// RoPE angles in float64) is written from the formulas, sharing nothing with onnx-llama.ts.
import { llamaDims, type ModelConfig } from './config.ts';
import { LAYER_NORM_EPS, type NamedWeights } from './weights.ts';

/** Per-layer keys and values, each [batch, heads, length, headDim] row-major (kvHeads heads for llama; llama keys after rotation). */
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
  if (model.arch === 'llama') return referenceForwardLlama(model, weights, input);
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

function rmsNorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(sum / x.length + eps);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * inv * weight[i]!;
  return out;
}

/** y = x @ W with W [in, out], float64 accumulation. */
function matvec(x: Float32Array, w: Float32Array, outDim: number): Float32Array {
  const out = new Float32Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let sum = 0;
    for (let i = 0; i < x.length; i++) sum += x[i]! * w[i * outDim + o]!;
    out[o] = sum;
  }
  return out;
}

/** Rotates each head of `v` ([n * headDim]) in place for position `pos` (rotate_half convention). */
function applyRope(v: Float32Array, n: number, headDim: number, pos: number, theta: number): void {
  const half = headDim / 2;
  for (let h = 0; h < n; h++) {
    for (let j = 0; j < half; j++) {
      const angle = pos * Math.pow(theta, (-2 * j) / headDim);
      const a = v[h * headDim + j]!;
      const b = v[h * headDim + half + j]!;
      v[h * headDim + j] = a * Math.cos(angle) - b * Math.sin(angle);
      v[h * headDim + half + j] = b * Math.cos(angle) + a * Math.sin(angle);
    }
  }
}

/** The llama forward (model.arch === 'llama'): same inputs and outputs as referenceForward. */
export function referenceForwardLlama(model: ModelConfig, weights: NamedWeights, input: ForwardInput): ForwardOutput {
  const { vocab, dModel: d, heads, layers } = model;
  const { kvHeads, headDim, ffnHidden, ropeTheta, normEps, tiedEmbeddings } = llamaDims(model);
  const rep = heads / kvHeads;
  const w = (name: string): Float32Array => weights.get(name)!.data;
  const batch = input.inputIds.length;
  const seq = input.inputIds[0]!.length;
  const pastLen = input.past?.length ?? 0;
  const total = pastLen + seq;

  const hidden: Float32Array[][] = input.inputIds.map((row) => row.map((tok) => w('tok_embeddings').slice(tok * d, (tok + 1) * d)));
  const present: KvCache = { length: total, keys: [], values: [] };
  const kvIndex = (b: number, h: number, t: number, j: number): number => ((b * kvHeads + h) * total + t) * headDim + j;
  const pastIndex = (b: number, h: number, t: number, j: number): number => ((b * kvHeads + h) * pastLen + t) * headDim + j;

  for (let l = 0; l < layers; l++) {
    const p = `h.${l}`;
    const keys = new Float32Array(batch * kvHeads * total * headDim);
    const values = new Float32Array(keys.length);
    const queries: Float32Array[][] = [];
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < kvHeads; h++) {
        for (let t = 0; t < pastLen; t++) {
          for (let j = 0; j < headDim; j++) {
            keys[kvIndex(b, h, t, j)] = input.past!.keys[l]![pastIndex(b, h, t, j)]!;
            values[kvIndex(b, h, t, j)] = input.past!.values[l]![pastIndex(b, h, t, j)]!;
          }
        }
      }
      const qRow: Float32Array[] = [];
      for (let s = 0; s < seq; s++) {
        const pos = input.positionIds[b]![s]!;
        const hn = rmsNorm(hidden[b]![s]!, w(`${p}.attn_norm`), normEps);
        const q = matvec(hn, w(`${p}.attn.wq`), heads * headDim);
        const k = matvec(hn, w(`${p}.attn.wk`), kvHeads * headDim);
        const v = matvec(hn, w(`${p}.attn.wv`), kvHeads * headDim);
        applyRope(q, heads, headDim, pos, ropeTheta);
        applyRope(k, kvHeads, headDim, pos, ropeTheta);
        qRow.push(q);
        for (let h = 0; h < kvHeads; h++) {
          for (let j = 0; j < headDim; j++) {
            keys[kvIndex(b, h, pastLen + s, j)] = k[h * headDim + j]!;
            values[kvIndex(b, h, pastLen + s, j)] = v[h * headDim + j]!;
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
        const ctx = new Float32Array(heads * headDim);
        for (let h = 0; h < heads; h++) {
          const kv = Math.floor(h / rep); // HF repeat_kv
          const scores: number[] = [];
          const allowed: number[] = [];
          for (let t = 0; t < total; t++) {
            if (t > pastLen + s || input.attentionMask[b]![t] === 0) continue;
            let dot = 0;
            for (let j = 0; j < headDim; j++) dot += queries[b]![s]![h * headDim + j]! * keys[kvIndex(b, kv, t, j)]!;
            scores.push(dot * scale);
            allowed.push(t);
          }
          if (allowed.length === 0) {
            for (let t = 0; t < total; t++) allowed.push(t), scores.push(0);
          }
          const max = Math.max(...scores);
          const exps = scores.map((v) => Math.exp(v - max));
          const sum = exps.reduce((a, c) => a + c, 0);
          for (let j = 0; j < headDim; j++) {
            let acc = 0;
            allowed.forEach((t, n) => (acc += (exps[n]! / sum) * values[kvIndex(b, kv, t, j)]!));
            ctx[h * headDim + j] = acc;
          }
        }
        const x = hidden[b]![s]!;
        const attnOut = matvec(ctx, w(`${p}.attn.wo`), d);
        for (let j = 0; j < d; j++) x[j]! += attnOut[j]!;
        const hn = rmsNorm(x, w(`${p}.ffn_norm`), normEps);
        const gate = matvec(hn, w(`${p}.mlp.gate`), ffnHidden);
        const up = matvec(hn, w(`${p}.mlp.up`), ffnHidden);
        for (let j = 0; j < ffnHidden; j++) gate[j] = (gate[j]! / (1 + Math.exp(-gate[j]!))) * up[j]!;
        const down = matvec(gate, w(`${p}.mlp.down`), d);
        for (let j = 0; j < d; j++) x[j]! += down[j]!;
      }
    }
  }

  const logits = new Float32Array(batch * seq * vocab);
  const head = w(tiedEmbeddings ? 'tok_embeddings' : 'output');
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const xf = rmsNorm(hidden[b]![s]!, w('norm'), normEps);
      for (let t = 0; t < vocab; t++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += xf[j]! * head[t * d + j]!;
        logits[(b * seq + s) * vocab + t] = dot;
      }
    }
  }
  return { logits, present };
}
