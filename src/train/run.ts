// The fine-tuning run: the LIMA recipe (AdamW, linear LR decay without warm-up, loss on response
// tokens, residual dropout rising with depth), one verified checkpoint per epoch, and a resume
// that continues from the last complete checkpoint with the same weights as an uninterrupted
// run: shuffling and dropout masks are derived from (seed, epoch, step), never from state that
// a restart would lose, and the optimizer's moments are saved with every checkpoint.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { ModelConfig } from '../model/config.ts';
import { validateModelConfig, countParams } from '../model/config.ts';
import type { NamedWeights } from '../model/weights.ts';
import { initWeights } from '../model/gpt.ts';
import { createEngine } from './engine.ts';
import type { TrainExample } from './batch.ts';
import { writeCheckpoint, loadCheckpoint, listCheckpoints, verifyCheckpoint, epochDirName, type CheckpointManifest } from '../checkpoint/index.ts';
import { initBackend, type BackendChoice } from './backend.ts';
import type { TrainConfig } from './config.ts';
import { deriveSeed, mulberry32, shuffleInPlace } from '../util/rng.ts';
import { createProgress } from '../util/progress.ts';
import { stableHash } from '../util/hash.ts';

export type { TrainExample } from './batch.ts';
export { makeBatch, trainStep } from './tfjs-engine.ts';

export interface TrainRunOptions {
  model: ModelConfig;
  train: TrainConfig;
  seed: number;
  runDir: string;
  examples: TrainExample[];
  trimmedCount: number;
  /** Packed general text for a `pretrain` base (loss on every token). */
  pretrainExamples?: number[][];
  tokenizerJson: unknown;
  dataHash: string;
  configHash: string;
  /** Continue from the last complete checkpoint (otherwise existing epochs are retrained). */
  resume: boolean;
  quiet?: boolean;
  /** Called after each epoch's checkpoint is written (the experiment may evaluate it at once). */
  onCheckpoint?: (checkpoint: { epoch: number; dir: string }) => void;
}

export interface TrainRunResult {
  backend: string;
  checkpoints: Array<{ epoch: number; dir: string; trainLoss: number }>;
  seconds: number;
  /** Training tokens (non-padding positions) per second over the epochs this call trained. */
  tokensPerSec: number;
  trimmed: number;
}

/** Residual dropout per layer, linear from bottom to top (LIMA: 0.0 -> 0.3). One layer gets the top rate. */
export function dropoutProfile(layers: number, bottom: number, top: number): number[] {
  if (layers === 1) return [top];
  return Array.from({ length: layers }, (_, i) => bottom + ((top - bottom) * i) / (layers - 1));
}

/** Linear decay from `start` at the first step to `end` at the last, no warm-up. */
export function learningRate(step: number, totalSteps: number, start: number, end: number): number {
  if (totalSteps <= 1) return start;
  return start + ((end - start) * step) / (totalSteps - 1);
}

/** Batches of one epoch, in a order derived from (seed, phase, epoch) only. */
function epochBatches(n: number, batchSize: number, seed: number, seedLabel: string, epoch: number): number[][] {
  const order = shuffleInPlace(Array.from({ length: n }, (_, i) => i), mulberry32(deriveSeed(seed, seedLabel, 'shuffle', epoch)));
  const batches: number[][] = [];
  for (let i = 0; i < n; i += batchSize) batches.push(order.slice(i, i + batchSize));
  return batches;
}

const OPTIMIZER_BIN = 'optimizer.bin';
const OPTIMIZER_JSON = 'optimizer.json';

function baseIdentity(opts: TrainRunOptions): string {
  return stableHash({ model: opts.model, base: opts.train.base, seed: opts.seed, data: opts.dataHash, tokenizer: stableHash(opts.tokenizerJson), n: opts.pretrainExamples?.length ?? 0 });
}

export async function runTraining(opts: TrainRunOptions): Promise<TrainRunResult> {
  const { model, train, seed, runDir } = opts;
  validateModelConfig(model, 'model');
  if (opts.examples.length === 0) throw new Error('training: no examples');
  const tooLong = opts.examples.findIndex((e) => e.ids.length > model.context);
  if (tooLong >= 0) throw new Error(`training: example ${tooLong} has ${opts.examples[tooLong]!.ids.length} tokens, more than model.context ${model.context}`);
  const backend = await initBackend(train.backend, { threads: train.threads });
  const log = (m: string) => opts.quiet || process.env.LIMA_QUIET === '1' ? undefined : process.stderr.write(`[train] ${m}\n`);
  log(`GPT ${countParams(model).toLocaleString('en-US')} parameters (d ${model.dModel}, ${model.layers} layers, ${model.heads} heads, context ${model.context}, vocab ${model.vocab}) on ${backend.name}`);
  await fs.mkdir(runDir, { recursive: true });

  const existing = await listCheckpoints(runDir);
  const results: TrainRunResult['checkpoints'] = [];
  let startEpoch = 1;
  let weights: NamedWeights | undefined;
  let optimizer: { bin: Uint8Array; json: string; where: string } | undefined;
  let lastManifest: CheckpointManifest | undefined;
  if (opts.resume) {
    for (const entry of existing) {
      if (entry.epoch > train.epochs) break;
      const manifest = await verifyCheckpoint(entry.dir);
      if (manifest.configHash !== opts.configHash || manifest.dataHash !== opts.dataHash) {
        throw new Error(`${entry.dir} was trained with another config or data; remove ${runDir} or use another experiment name`);
      }
      if (entry.epoch !== startEpoch) throw new Error(`${runDir}: checkpoint ${epochDirName(startEpoch)} is missing before ${path.basename(entry.dir)}; remove the later ones to resume`);
      results.push({ epoch: entry.epoch, dir: entry.dir, trainLoss: manifest.trainLoss });
      lastManifest = manifest;
      startEpoch = entry.epoch + 1;
    }
    if (results.length > 0) {
      const last = results[results.length - 1]!;
      if (last.epoch === train.epochs) {
        log(`all ${train.epochs} epochs already trained in ${runDir}`);
        return { backend: backend.name, checkpoints: results, seconds: 0, tokensPerSec: Number((lastManifest!.extra?.tokensPerSec as number) ?? 0), trimmed: opts.trimmedCount };
      }
      const loaded = await loadCheckpoint(last.dir);
      weights = loaded.weights;
      optimizer = { bin: await fs.readFile(path.join(last.dir, OPTIMIZER_BIN)), json: await fs.readFile(path.join(last.dir, OPTIMIZER_JSON), 'utf8'), where: last.dir };
      log(`resuming after epoch ${last.epoch} from ${last.dir}`);
    }
  }

  const started = Date.now();
  let trainedTokens = 0;
  let finetuneSeconds = 0;
  if (!weights) weights = await baseWeights(opts, backend, log);

  const engine = await createEngine(backend, model, weights, train);
  try {
    if (optimizer) engine.restoreOptimizer(optimizer.bin, optimizer.json, optimizer.where);
    const stepsPerEpoch = Math.ceil(opts.examples.length / train.batchSize);
    const totalSteps = stepsPerEpoch * train.epochs;
    const lrStart = train.lr * train.lrScale;
    const lrEnd = train.lrEnd * train.lrScale;
    const dropout = dropoutProfile(model.layers, train.dropoutBottom, train.dropoutTop);
    const progress = createProgress('train', (train.epochs - startEpoch + 1) * stepsPerEpoch, { quiet: opts.quiet });
    const phaseStarted = Date.now();
    let phaseTokens = 0;
    for (let epoch = startEpoch; epoch <= train.epochs; epoch++) {
      const epochStarted = Date.now();
      let lossSum = 0;
      let scoredSum = 0;
      let step = (epoch - 1) * stepsPerEpoch;
      for (const indices of epochBatches(opts.examples.length, train.batchSize, seed, 'finetune', epoch)) {
        const lr = learningRate(step, totalSteps, lrStart, lrEnd);
        const done = await engine.step(indices.map((i) => opts.examples[i]!), lr, dropout, deriveSeed(seed, 'finetune', 'dropout', step));
        lossSum += done.loss * done.scored;
        scoredSum += done.scored;
        phaseTokens += done.tokens;
        step += 1;
        const tps = phaseTokens / Math.max(1e-3, (Date.now() - phaseStarted) / 1000);
        progress.tick(1, `epoch ${epoch}/${train.epochs} | loss ${(lossSum / Math.max(1, scoredSum)).toFixed(3)} | lr ${lr.toExponential(2)} | ${tps.toFixed(0)} tok/s`);
      }
      const trainLoss = lossSum / Math.max(1, scoredSum);
      const tokensPerSec = phaseTokens / Math.max(1e-3, (Date.now() - phaseStarted) / 1000);
      const opt = engine.serializeOptimizer();
      const dir = await writeCheckpoint(
        runDir,
        { model, weights: engine.weights(), tokenizer: opts.tokenizerJson, extraFiles: { [OPTIMIZER_BIN]: opt.bin, [OPTIMIZER_JSON]: opt.json } },
        {
          epoch,
          step,
          trainLoss,
          dataHash: opts.dataHash,
          configHash: opts.configHash,
          backend: backend.name,
          extra: {
            backendDetail: backend.detail,
            tokensPerSec,
            epochSeconds: (Date.now() - epochStarted) / 1000,
            lr: learningRate(step - 1, totalSteps, lrStart, lrEnd),
            lrScale: train.lrScale,
            examples: opts.examples.length,
            trimmed: opts.trimmedCount,
            dropout,
          },
        },
      );
      results.push({ epoch, dir, trainLoss });
      opts.onCheckpoint?.({ epoch, dir });
    }
    progress.done();
    trainedTokens = phaseTokens;
    finetuneSeconds = (Date.now() - phaseStarted) / 1000;
  } finally {
    await engine.dispose();
  }
  const seconds = (Date.now() - started) / 1000;
  // Fine-tuning throughput only: pretraining time is in `seconds` but not in these tokens.
  return { backend: backend.name, checkpoints: results, seconds, tokensPerSec: trainedTokens / Math.max(1e-3, finetuneSeconds), trimmed: opts.trimmedCount };
}

/** Starting weights: from scratch, an earlier checkpoint, or a short pretraining stage (kept in runDir/base). */
async function baseWeights(opts: TrainRunOptions, backend: BackendChoice, log: (m: string) => void): Promise<NamedWeights> {
  const { model, train, seed } = opts;
  const base = train.base;
  if (base.kind === 'scratch') return initWeights(model, deriveSeed(seed, 'init'));
  if (base.kind === 'checkpoint') {
    const loaded = await loadCheckpoint(base.path);
    if (JSON.stringify(loaded.model) !== JSON.stringify(model)) {
      throw new Error(`train.base.path ${base.path}: its model ${JSON.stringify(loaded.model)} differs from this run's ${JSON.stringify(model)}`);
    }
    log(`starting from checkpoint ${base.path}`);
    return loaded.weights;
  }
  // Pretraining on general text: so that, as in LIMA, knowledge comes from pretraining and the
  // curated set teaches the format. Its result is a checkpoint of its own, reused on rerun.
  const baseDir = path.join(opts.runDir, 'base');
  const identity = baseIdentity(opts);
  const done = (await listCheckpoints(baseDir)).find((c) => c.epoch === base.epochs);
  if (done) {
    const loaded = await loadCheckpoint(done.dir);
    if (loaded.manifest.configHash === identity) {
      log(`base model: reusing the pretrained model in ${done.dir}`);
      return loaded.weights;
    }
  }
  const sequences = opts.pretrainExamples ?? [];
  if (sequences.length === 0) throw new Error('train.base is "pretrain" but there is no pretraining text');
  const examples: TrainExample[] = sequences.map((ids) => ({ ids, lossMask: ids.map((_, t) => (t === 0 ? 0 : 1)) }));
  const engine = await createEngine(backend, model, initWeights(model, deriveSeed(seed, 'init')), train);
  try {
    const stepsPerEpoch = Math.ceil(examples.length / base.batchSize);
    const totalSteps = stepsPerEpoch * base.epochs;
    const progress = createProgress('pretrain', totalSteps, { quiet: opts.quiet });
    const started = Date.now();
    let tokens = 0;
    let step = 0;
    let lossSum = 0;
    let scoredSum = 0;
    for (let epoch = 1; epoch <= base.epochs; epoch++) {
      for (const indices of epochBatches(examples.length, base.batchSize, seed, 'pretrain', epoch)) {
        // Linear decay to a tenth of the rate; no dropout (as nanoGPT's pretraining).
        const lr = learningRate(step, totalSteps, base.lr, base.lr / 10);
        const done = await engine.step(indices.map((i) => examples[i]!), lr, undefined, 0);
        lossSum += done.loss * done.scored;
        scoredSum += done.scored;
        tokens += done.tokens;
        step += 1;
        progress.tick(1, `epoch ${epoch}/${base.epochs} | loss ${(lossSum / Math.max(1, scoredSum)).toFixed(3)} | ${(tokens / Math.max(1e-3, (Date.now() - started) / 1000)).toFixed(0)} tok/s`);
      }
    }
    progress.done();
    const weights = engine.weights();
    const meta: Omit<CheckpointManifest, 'files' | 'time'> = {
      epoch: base.epochs,
      step,
      trainLoss: lossSum / Math.max(1, scoredSum),
      dataHash: opts.dataHash,
      configHash: identity,
      backend: backend.name,
      extra: { kind: 'pretrain', sequences: sequences.length, tokens, seconds: (Date.now() - started) / 1000 },
    };
    await writeCheckpoint(baseDir, { model, weights, tokenizer: opts.tokenizerJson }, meta);
    log(`base model: pretrained ${base.epochs} epoch(s) on ${sequences.length} sequences, loss ${meta.trainLoss.toFixed(3)}`);
    return weights;
  } finally {
    await engine.dispose();
  }
}
