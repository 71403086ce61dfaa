// The onnxruntime CPU training engine (`train.backend: "ort"`): each step runs the training graph
// of src/model/onnx-train.ts (forward, loss and every gradient in one session run), then AdamW
// on plain arrays in JS. Weights are fed as inputs every step; the engine owns them.
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/config.ts';
import type { NamedWeights } from '../model/weights.ts';
import { checkWeights } from '../model/weights.ts';
import { trainGraphBytes, gradName, dropoutMaskName, addWteRows, WTE_INPUT_ROWS, WTE_TARGET_ROWS } from '../model/onnx-train.ts';
import { adamwStepPlain, createPlainAdamW, restorePlainAdamW, serializePlainAdamW, type AdamWSettings } from './adamw.ts';
import { dropoutMasks, makeBatchArrays, type BatchArrays, type TrainExample } from './batch.ts';
import type { TrainEngine, StepResult } from './engine.ts';

export interface OrtTrainSessionOptions {
  /** onnxruntime intra-op threads. */
  threads: number;
  /** Layers that take dropout masks (length = layers); none when absent. */
  dropoutLayers?: boolean[];
  /** Write an onnxruntime profile (JSON) with this file prefix. */
  profilePrefix?: string;
  /** Let idle intra-op threads spin (onnxruntime's default) rather than sleep. Off by default:
   *  when the other core is busy (other work, or evaluation during training) spinning threads
   *  collapse. On the default model, 2 threads, 5 interleaved pairs on this shared 2-core machine
   *  (load ~3-4): spinning 12.5k, 10.5k, 35.9k, 36.9k, 29.6k tokens/s; sleeping 31.6k, 27.2k,
   *  14.9k, 25.0k, 34.3k (1 thread: 23-28k). Spinning wins on a quiet machine, loses 2.5x under
   *  contention. */
  spinning?: boolean;
}

export interface OrtStepOutput {
  /** Mean NLL over scored targets. */
  loss: number;
  /** grad of the loss per weight name, each with its weight's length. */
  grads: Map<string, Float32Array>;
}

function int64Column(values: Int32Array): BigInt64Array {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
  return out;
}

/** One onnxruntime session over the training graph for a model and a dropout layout. */
export class OrtTrainSession {
  private readonly fetches: string[];

  private constructor(
    readonly model: ModelConfig,
    readonly dropoutLayers: boolean[],
    private readonly session: ort.InferenceSession,
  ) {
    this.fetches = ['loss', ...session.outputNames.filter((n) => n !== 'loss')];
  }

  static async create(model: ModelConfig, options: OrtTrainSessionOptions): Promise<OrtTrainSession> {
    const dropoutLayers = options.dropoutLayers ?? new Array<boolean>(model.layers).fill(false);
    const session = await ort.InferenceSession.create(trainGraphBytes(model, { dropoutLayers }), {
      intraOpNumThreads: Math.max(1, Math.floor(options.threads)),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
      ...(options.profilePrefix ? { enableProfiling: true, profileFilePrefix: options.profilePrefix } : {}),
      ...(options.spinning === true ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
    });
    return new OrtTrainSession(model, dropoutLayers, session);
  }

  /**
   * Loss and gradients for `weights` on `batch`. `masks[i]` are layer i's dropout masks
   * ([batch * length, dModel] each, see batch.ts dropoutMasks); required exactly for the layers
   * this session was built with dropout.
   */
  async run(weights: NamedWeights, batch: BatchArrays, masks?: ReadonlyArray<{ attn: Float32Array; mlp: Float32Array } | undefined>): Promise<OrtStepOutput> {
    const rows = batch.batch * batch.length;
    const d = this.model.dModel;
    const lossWeights = new Float32Array(rows);
    const denominator = Math.max(1, batch.scored);
    for (let i = 0; i < rows; i++) lossWeights[i] = batch.mask[i]! / denominator;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', int64Column(batch.inputs), [batch.batch, batch.length]),
      targets: new ort.Tensor('int64', int64Column(batch.targets), [rows, 1]),
      loss_weights: new ort.Tensor('float32', lossWeights, [rows, 1]),
    };
    for (const [name, w] of weights) feeds[name] = new ort.Tensor('float32', w.data, w.shape);
    this.dropoutLayers.forEach((on, layer) => {
      if (!on) return;
      const m = masks?.[layer];
      if (!m || m.attn.length !== rows * d || m.mlp.length !== rows * d) throw new Error(`ort training step: layer ${layer} needs dropout masks of ${rows} x ${d}`);
      feeds[dropoutMaskName(layer, 'attn')] = new ort.Tensor('float32', m.attn, [rows, d]);
      feeds[dropoutMaskName(layer, 'mlp')] = new ort.Tensor('float32', m.mlp, [rows, d]);
    });
    const out = await this.session.run(feeds, this.fetches);
    const grads = new Map<string, Float32Array>();
    for (const name of weights.keys()) grads.set(name, out[gradName(name)]!.data as Float32Array);
    const wte = grads.get('wte');
    if (!wte) throw new Error('ort training step: the graph returned no grad.wte');
    addWteRows(wte, d, batch.targets, out[WTE_TARGET_ROWS]!.data as Float32Array, batch.inputs, out[WTE_INPUT_ROWS]!.data as Float32Array);
    return { loss: (out.loss!.data as Float32Array)[0]!, grads };
  }

  /** Ends profiling (when enabled): onnxruntime writes `${profilePrefix}_<time>.json`. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The version of the onnxruntime library behind the engine. */
export function ortVersion(): string {
  return ort.env.versions?.common ?? 'unknown';
}

/** Training engine on onnxruntime: sessions per dropout layout (pretraining has none), AdamW in JS. */
export function createOrtEngine(model: ModelConfig, initial: NamedWeights, settings: AdamWSettings, threads: number, options: Pick<OrtTrainSessionOptions, 'spinning'> = {}): TrainEngine {
  checkWeights(initial, model);
  const weights: NamedWeights = new Map([...initial].map(([name, w]) => [name, { shape: [...w.shape], data: Float32Array.from(w.data) }]));
  const state = createPlainAdamW(weights);
  const sessions = new Map<string, Promise<OrtTrainSession>>();
  const sessionFor = (dropoutLayers: boolean[]): Promise<OrtTrainSession> => {
    const key = dropoutLayers.map((on) => (on ? 1 : 0)).join('');
    let s = sessions.get(key);
    if (!s) {
      s = OrtTrainSession.create(model, { threads, dropoutLayers, ...options });
      sessions.set(key, s);
    }
    return s;
  };
  return {
    async step(examples: TrainExample[], lr: number, dropout: number[] | undefined, dropoutSeed: number): Promise<StepResult> {
      const batch = makeBatchArrays(examples);
      const rates = dropout ?? new Array<number>(model.layers).fill(0);
      const session = await sessionFor(rates.map((r) => r > 0));
      const masks = dropoutMasks(rates, batch.batch * batch.length, model.dModel, dropoutSeed);
      const { loss, grads } = await session.run(weights, batch, masks);
      if (!Number.isFinite(loss)) throw new Error(`training diverged: loss is ${loss} at optimizer step ${state.step + 1} (lower train.lr or train.lrScale)`);
      adamwStepPlain(weights, grads, state, lr, settings);
      return { loss, tokens: batch.tokens, scored: batch.scored };
    },
    async loss(examples: TrainExample[]): Promise<StepResult> {
      // The training graph also returns gradients; validation sets are small, so one graph serves both.
      const batch = makeBatchArrays(examples);
      const session = await sessionFor(new Array<boolean>(model.layers).fill(false));
      const { loss } = await session.run(weights, batch);
      return { loss, tokens: batch.tokens, scored: batch.scored };
    },
    weights: () => new Map([...weights].map(([name, w]) => [name, { shape: [...w.shape], data: Float32Array.from(w.data) }])),
    serializeOptimizer: () => serializePlainAdamW(weights, state),
    restoreOptimizer: (bin, json, where) => restorePlainAdamW(weights, state, bin, json, where),
    async dispose() {
      for (const s of sessions.values()) await (await s).release();
      sessions.clear();
    },
  };
}
