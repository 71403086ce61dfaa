// Pieces the benchmarks share: random weights of a given shape, and onnxruntime's own MatMul
// rate (the yardstick the engines' GFLOP/s are compared with, measured in the same run).
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../src/model/config.ts';
import { DataType, encodeModel, valueInfo } from '../src/model/onnx-proto.ts';
import { weightShapes, type NamedWeights } from '../src/model/weights.ts';
import { gaussian, mulberry32 } from '../src/util/rng.ts';

/** Weights of `model`'s shapes: N(0, 0.05^2), LayerNorm gains around 1; deterministic in `seed`. */
export function randomWeights(model: ModelConfig, seed: number): NamedWeights {
  const rng = mulberry32(seed);
  const weights: NamedWeights = new Map();
  for (const [name, shape] of weightShapes(model)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const base = name.endsWith('gamma') ? 1 : 0;
    for (let i = 0; i < n; i++) data[i] = base + 0.05 * gaussian(rng);
    weights.set(name, { shape, data });
  }
  return weights;
}

/** A session multiplying an [n, n] input by a fixed [n, n] matrix, and that input (2 n^3 FLOP a run). */
export async function matmulSession(threads: number, n = 1024): Promise<{ session: ort.InferenceSession; a: ort.Tensor; flop: number }> {
  const rng = mulberry32(3);
  const b = Float32Array.from({ length: n * n }, () => rng() - 0.5);
  const bytes = encodeModel({
    irVersion: 9,
    opsetImport: [{ domain: '', version: 20 }],
    producerName: 'lima-harness-bench',
    producerVersion: '1',
    graph: {
      name: 'matmul',
      node: [{ input: ['a', 'b'], output: ['c'], opType: 'MatMul', name: 'mm' }],
      initializer: [{ name: 'b', dims: [n, n], dataType: DataType.FLOAT, rawData: new Uint8Array(b.buffer) }],
      input: [valueInfo('a', DataType.FLOAT, [n, n])],
      output: [valueInfo('c', DataType.FLOAT, [n, n])],
    },
  });
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' });
  const a = new ort.Tensor('float32', Float32Array.from({ length: n * n }, () => rng() - 0.5), [n, n]);
  return { session, a, flop: 2 * n ** 3 };
}
