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
import { epochBatches, type TrainExample } from './batch.ts';
import { writeCheckpoint, loadCheckpoint, listCheckpoints, verifyCheckpoint, epochDirName, type CheckpointManifest } from '../checkpoint/index.ts';
import { initBackend } from './backend.ts';
import type { TrainConfig } from './config.ts';
import { deriveSeed } from '../util/rng.ts';
import { createProgress } from '../util/progress.ts';

export type { TrainExample } from './batch.ts';
export { makeBatch, trainStep } from './tfjs-engine.ts';

export interface TrainRunOptions {
  model: ModelConfig;
  train: TrainConfig;
  seed: number;
  runDir: string;
  examples: TrainExample[];
  trimmedCount: number;
  /** The pretrained base's checkpoint directory (base.ts), for a `pretrain` base. */
  baseCheckpoint?: string;
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

const OPTIMIZER_BIN = 'optimizer.bin';
const OPTIMIZER_JSON = 'optimizer.json';

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
  if (!weights) weights = await baseWeights(opts, log);

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

/** Starting weights: from scratch, an earlier checkpoint, or the pretrained base (base.ts). */
async function baseWeights(opts: TrainRunOptions, log: (m: string) => void): Promise<NamedWeights> {
  const { model, train, seed } = opts;
  const base = train.base;
  if (base.kind === 'scratch') return initWeights(model, deriveSeed(seed, 'init'));
  const dir = base.kind === 'checkpoint' ? base.path : opts.baseCheckpoint;
  if (!dir) throw new Error('training: train.base is "pretrain" but no pretrained base checkpoint was given (pretrainBase in src/train/base.ts makes it)');
  const loaded = await loadCheckpoint(dir);
  if (JSON.stringify(loaded.model) !== JSON.stringify(model)) {
    throw new Error(`${dir}: the base's model ${JSON.stringify(loaded.model)} differs from this run's ${JSON.stringify(model)}`);
  }
  log(`starting from the base checkpoint ${dir}`);
  return loaded.weights;
}
