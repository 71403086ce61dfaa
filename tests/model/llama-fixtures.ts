// Random llama weights for the llama tests (graph, reference forward, HF folders).
import type { ModelConfig } from '../../src/model/config.ts';
import { weightShapes, type NamedWeights } from '../../src/model/weights.ts';
import { gaussian, mulberry32 } from '../../src/util/rng.ts';

/** Weights for `model` (arch llama) from `seed`: norm weights near 1, the rest N(0, scale^2). */
export function randomLlamaWeights(model: ModelConfig, seed: number, scale = 0.3): NamedWeights {
  const rng = mulberry32(seed);
  const weights: NamedWeights = new Map();
  for (const [name, shape] of weightShapes(model)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = name === 'norm' || name.endsWith('_norm');
    for (let i = 0; i < n; i++) data[i] = isNorm ? 1 + 0.2 * gaussian(rng) : scale * gaussian(rng);
    weights.set(name, { shape, data });
  }
  return weights;
}

/** Small llama configs covering GQA, tied and untied heads, and headDim != dModel / heads. */
export const LLAMA_CONFIGS: Record<string, ModelConfig> = {
  gqa: { arch: 'llama', vocab: 89, context: 48, dModel: 32, layers: 2, heads: 4, kvHeads: 2, ffnHidden: 56, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: false },
  mha_tied: { arch: 'llama', vocab: 71, context: 32, dModel: 24, layers: 2, heads: 3, kvHeads: 3, ffnHidden: 40, ropeTheta: 500000, normEps: 1e-6, tiedEmbeddings: true },
  wide_heads: { arch: 'llama', vocab: 61, context: 40, dModel: 20, layers: 3, heads: 4, kvHeads: 1, headDim: 8, ffnHidden: 36, tiedEmbeddings: false },
};
