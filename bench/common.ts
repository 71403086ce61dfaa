// Pieces the benchmarks share: random weights (the tests' helper), and onnxruntime's own MatMul
// rate (the yardstick the engines' GFLOP/s are compared with, measured in the same run).
import * as ort from 'onnxruntime-node';
import { DataType, encodeModel, valueInfo } from '../src/model/onnx-proto.ts';
import { mulberry32 } from '../src/util/rng.ts';

/** Weights of `model`'s shapes: N(0, scale^2), LayerNorm gains around 1 (the tests' helper). */
export { randomWeights } from '../tests/eval/helpers.ts';

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
