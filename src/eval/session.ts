// One onnxruntime-node session over an exported decoder (src/model/onnx-export.ts), with the
// tensor plumbing for full-sequence scoring and KV-cached decoding.
import * as ort from 'onnxruntime-node';
import { cacheDims, type ModelConfig } from '../model/config.ts';
import { pastKeyName, pastValueName, presentKeyName, presentValueName } from '../model/onnx-export.ts';

export interface SessionOptions {
  /** onnxruntime intra-op threads for this session. */
  threads: number;
}

/** Per-layer present keys/values as returned by the graph, fed back as the next past. */
export interface PastState {
  length: number;
  tensors: ort.Tensor[]; // [key0, value0, key1, value1, ...]
}

export interface StepOutput {
  /** [batch, seq, vocab] */
  logits: Float32Array;
  present: PastState;
}

function int64Tensor(rows: readonly (readonly number[])[], width: number): ort.Tensor {
  const data = new BigInt64Array(rows.length * width);
  rows.forEach((row, b) => {
    for (let t = 0; t < width; t++) data[b * width + t] = BigInt(row[t] ?? 0);
  });
  return new ort.Tensor('int64', data, [rows.length, width]);
}

export class DecoderSession {
  /** present.{i}.key, present.{i}.value for every layer: the cache outputs decoding fetches. */
  private readonly presentNames: string[];

  private constructor(
    readonly model: ModelConfig,
    private readonly session: ort.InferenceSession,
  ) {
    this.presentNames = Array.from({ length: model.layers }, (_, i) => [presentKeyName(i), presentValueName(i)]).flat();
  }

  static async create(onnx: string | Uint8Array, model: ModelConfig, options: SessionOptions): Promise<DecoderSession> {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: Math.max(1, Math.floor(options.threads)),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
    };
    const session = typeof onnx === 'string' ? await ort.InferenceSession.create(onnx, sessionOptions) : await ort.InferenceSession.create(onnx, sessionOptions);
    return new DecoderSession(model, session);
  }

  /** Past of length 0 (empty tensors [batch, cacheHeads, 0, headDim]: kvHeads for llama) for `batch` rows. */
  emptyPast(batch: number): PastState {
    const { cacheHeads, headDim } = cacheDims(this.model);
    const tensors: ort.Tensor[] = [];
    for (let i = 0; i < 2 * this.model.layers; i++) tensors.push(new ort.Tensor('float32', new Float32Array(0), [batch, cacheHeads, 0, headDim]));
    return { length: 0, tensors };
  }

  private feeds(inputIds: readonly (readonly number[])[], attentionMask: readonly (readonly number[])[], positionIds: readonly (readonly number[])[], past: PastState): Record<string, ort.Tensor> {
    const seq = Math.max(...inputIds.map((r) => r.length));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64Tensor(inputIds, seq),
      attention_mask: int64Tensor(attentionMask, past.length + seq),
      position_ids: int64Tensor(positionIds, seq),
    };
    for (let i = 0; i < this.model.layers; i++) {
      feeds[pastKeyName(i)] = past.tensors[2 * i]!;
      feeds[pastValueName(i)] = past.tensors[2 * i + 1]!;
    }
    return feeds;
  }

  /**
   * Runs the graph for decoding. `inputIds`/`positionIds` are [batch][seq] (rows shorter than seq
   * are padded with 0), `attentionMask` is [batch][past + seq].
   */
  async run(inputIds: readonly (readonly number[])[], attentionMask: readonly (readonly number[])[], positionIds: readonly (readonly number[])[], past?: PastState): Promise<StepOutput> {
    const pastState = past ?? this.emptyPast(inputIds.length);
    const out = await this.session.run(this.feeds(inputIds, attentionMask, positionIds, pastState), ['logits', ...this.presentNames]);
    const seq = Math.max(...inputIds.map((r) => r.length));
    return { logits: out.logits!.data as Float32Array, present: { length: pastState.length + seq, tensors: this.presentNames.map((name) => out[name]!) } };
  }

  /**
   * Full-sequence scoring without a past: [batch, seq-1] values ln p(inputIds[b][t+1] | inputIds[b][0..t]).
   * Only this output is copied out of onnxruntime (not the logits or the keys/values).
   */
  async tokenLogprobs(inputIds: readonly (readonly number[])[], attentionMask: readonly (readonly number[])[], positionIds: readonly (readonly number[])[]): Promise<Float32Array> {
    const out = await this.session.run(this.feeds(inputIds, attentionMask, positionIds, this.emptyPast(inputIds.length)), ['token_logprobs']);
    return out.token_logprobs!.data as Float32Array;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
