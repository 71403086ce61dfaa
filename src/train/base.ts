// The base model: a GPT pretrained on general text before the fine-tune, so that, as in LIMA,
// knowledge comes from pretraining and the curated set teaches the format. A base is
// content-addressed: checkpoints/bases/<hash>/ where the hash covers the pretraining text, the
// tokenizer's settings, the model, the schedule, the seed and the engine, and nothing of the
// study's train / held-out / dev sets (their only trace is the documents dropped as duplicates
// of held-out and dev questions, which changes the text and is recorded in base.json).
//
// Layout of a base directory:
//   tokenizer.json   byte-level BPE trained on the pretraining text alone (it belongs to the base)
//   partial/epoch-00 mid-way state (weights, AdamW moments, step), rewritten every few minutes
//   epoch-00/        the finished base as a native checkpoint: a study evaluates it as epoch 0
//   base.json        what it was trained on and how: documents, tokens, dropped, losses, times
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { ModelConfig } from '../model/config.ts';
import { countParams, validateModelConfig } from '../model/config.ts';
import { initWeights } from '../model/gpt.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { writeCheckpoint, loadCheckpoint, listCheckpoints, type LoadedCheckpoint } from '../checkpoint/index.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { sha256, stableHash } from '../util/hash.ts';
import { deriveSeed, mulberry32, shuffleInPlace } from '../util/rng.ts';
import { createProgress } from '../util/progress.ts';
import { initBackend } from './backend.ts';
import { createEngine, type TrainEngine } from './engine.ts';
import { epochBatches, type TrainExample } from './batch.ts';
import type { PretrainBaseConfig, TrainConfig } from './config.ts';

/** Bump when pretraining's packing, split or schedule changes meaning: older bases are not reused. */
const BASE_VERSION = 1;
const OPTIMIZER_BIN = 'optimizer.bin';
const OPTIMIZER_JSON = 'optimizer.json';

export interface PretrainBaseOptions {
  /** Where bases live (checkpoints/bases). */
  basesDir: string;
  /** The model without its vocabulary size (the base's tokenizer decides it). */
  model: Omit<ModelConfig, 'vocab'>;
  vocabSize: number;
  base: PretrainBaseConfig;
  /** Engine and AdamW settings (backend, threads, weightDecay, betas, eps). */
  train: TrainConfig;
  seed: number;
  /** Pretraining documents, already deduplicated against the study's held-out and dev questions. */
  documents: string[];
  /** Where the documents came from and what was dropped: recorded in base.json, part of the identity. */
  provenance: Record<string, unknown>;
  quiet?: boolean;
  /** Called after every optimizer step with the number of steps done (tests stop a run here). */
  onStep?: (step: number) => void;
}

export interface BaseRecord {
  hash: string;
  documents: { train: number; validation: number };
  sequences: { train: number; validation: number };
  tokens: { train: number; validation: number };
  steps: number;
  epochs: number;
  /** Mean training loss (nats per token) over the last stretch between mid-way checkpoints, and over all steps. */
  trainLoss: number;
  /** Validation loss (nats per token) on documents pretraining never trained on, at the end. */
  validationLoss: number | null;
  /** Validation loss at each mid-way checkpoint and at the end. */
  curve: Array<{ step: number; trainLoss: number; validationLoss: number | null; seconds: number }>;
  seconds: number;
  tokensPerSec: number;
  backend: string;
  params: number;
  model: ModelConfig;
  schedule: Omit<PretrainBaseConfig, 'sources' | 'wordnetTexts' | 'checkpointMinutes'>;
  provenance: Record<string, unknown>;
}

export interface PretrainedBase {
  /** The finished base checkpoint (a native checkpoint directory, epoch 0). */
  dir: string;
  hash: string;
  tokenizer: BpeTokenizer;
  record: BaseRecord;
}

/** Packs documents into sequences of at most `maxLength` tokens, each document followed by <|endoftext|>. */
export function packDocuments(tokenizer: BpeTokenizer, texts: string[], maxLength: number): number[][] {
  const sequences: number[][] = [];
  let current: number[] = [];
  for (const text of texts) {
    for (const id of [...tokenizer.encode(text), tokenizer.special.eot]) {
      current.push(id);
      if (current.length === maxLength) {
        sequences.push(current);
        current = [];
      }
    }
  }
  if (current.length > 1) sequences.push(current);
  return sequences;
}

/** Documents held back for validation: a seeded share of them (at least one when there are two or more). */
export function splitDocuments(documents: string[], share: number, seed: number): { train: string[]; validation: string[] } {
  const order = shuffleInPlace(Array.from({ length: documents.length }, (_, i) => i), mulberry32(deriveSeed(seed, 'pretrain', 'validation-split')));
  const count = share <= 0 || documents.length < 2 ? 0 : Math.min(documents.length - 1, Math.max(1, Math.round(share * documents.length)));
  const held = new Set(order.slice(0, count));
  // Document order is kept within each part: packing joins neighbours as the text has them.
  return { train: documents.filter((_, i) => !held.has(i)), validation: documents.filter((_, i) => held.has(i)) };
}

/** Linear warm-up from lr/warmup to `lr`, then linear decay to `lrEnd` at the last step. */
export function pretrainLearningRate(step: number, totalSteps: number, lr: number, lrEnd: number, warmupSteps: number): number {
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  const span = totalSteps - warmupSteps;
  if (span <= 1) return lr;
  return lr + ((lrEnd - lr) * (step - warmupSteps)) / (span - 1);
}

/** What of `train.base` shapes the weights: all but where the text comes from (the text itself is hashed) and how often it is saved. */
function scheduleOf(base: PretrainBaseConfig): BaseRecord['schedule'] {
  const { sources: _s, wordnetTexts: _w, checkpointMinutes: _c, ...schedule } = base;
  return schedule;
}

/** The identity of a base: what its weights depend on, nothing else (checkpointMinutes does not change them). */
export function baseIdentity(o: Pick<PretrainBaseOptions, 'model' | 'vocabSize' | 'base' | 'train' | 'seed' | 'documents' | 'provenance'>, backend: string): string {
  const schedule = scheduleOf(o.base);
  return stableHash({
    version: BASE_VERSION,
    text: sha256(o.documents.join('\u0000')),
    documents: o.documents.length,
    vocabSize: o.vocabSize,
    model: o.model,
    schedule,
    optimizer: { weightDecay: o.train.weightDecay, beta1: o.train.beta1, beta2: o.train.beta2, eps: o.train.eps },
    seed: o.seed,
    backend,
  });
}

async function meanLoss(engine: TrainEngine, sequences: TrainExample[], batchSize: number): Promise<number | null> {
  let sum = 0;
  let scored = 0;
  for (let i = 0; i < sequences.length; i += batchSize) {
    const r = await engine.loss(sequences.slice(i, i + batchSize));
    sum += r.loss * r.scored;
    scored += r.scored;
  }
  return scored > 0 ? sum / scored : null;
}

/** The finished base in `dir`, if it is complete and verifies. */
async function finishedBase(dir: string): Promise<{ checkpoint: LoadedCheckpoint; record: BaseRecord; tokenizer: BpeTokenizer } | undefined> {
  const done = (await listCheckpoints(dir)).find((c) => c.epoch === 0);
  if (!done) return undefined;
  const checkpoint = await loadCheckpoint(done.dir);
  let record: BaseRecord;
  try {
    record = JSON.parse(await fs.readFile(path.join(dir, 'base.json'), 'utf8')) as BaseRecord;
  } catch (err) {
    throw new Error(`${dir}: the base checkpoint is there but base.json cannot be read (${(err as Error).message}); remove ${dir} to pretrain it again`);
  }
  return { checkpoint, record, tokenizer: BpeTokenizer.fromJSON(checkpoint.tokenizer) };
}

/**
 * Pretrains (or reuses) the base for these options. Returns the finished base checkpoint, its
 * tokenizer and its record. Resumes from the last mid-way checkpoint after a crash with the
 * same weights as an uninterrupted run: batches follow (seed, epoch), the learning rate follows
 * the step, and AdamW's moments are saved with the weights.
 * Throws when there is no pretraining text or a stored base fails verification.
 */
export async function pretrainBase(opts: PretrainBaseOptions): Promise<PretrainedBase> {
  const { base, seed } = opts;
  const log = (m: string) => (opts.quiet || process.env.LIMA_QUIET === '1' ? undefined : process.stderr.write(`[base] ${m}\n`));
  if (opts.documents.length === 0) throw new Error('train.base is "pretrain" but there is no pretraining text: give train.base.sources or train.base.wordnetTexts (with the builtin dataset: data.pretrainTexts > 0)');
  const backend = await initBackend(opts.train.backend, { threads: opts.train.threads });
  const hash = baseIdentity(opts, backend.name);
  const dir = path.join(opts.basesDir, hash.slice(0, 16));
  const finished = await finishedBase(dir);
  if (finished) {
    if (finished.record.hash !== hash) throw new Error(`${dir}: base.json records hash ${finished.record.hash.slice(0, 16)}..., expected ${hash.slice(0, 16)}...; remove ${dir}`);
    log(`reusing the base in ${dir} (validation loss ${finished.record.validationLoss?.toFixed(4) ?? 'n/a'})`);
    return { dir: finished.checkpoint.dir, hash, tokenizer: finished.tokenizer, record: finished.record };
  }
  await fs.mkdir(dir, { recursive: true });

  // The tokenizer belongs to the base: trained on the pretraining text alone.
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  let tokenizer: BpeTokenizer;
  try {
    tokenizer = BpeTokenizer.fromJSON(JSON.parse(await fs.readFile(tokenizerFile, 'utf8')));
  } catch {
    const started = Date.now();
    tokenizer = BpeTokenizer.train(opts.documents, opts.vocabSize);
    await writeFileAtomic(tokenizerFile, JSON.stringify(tokenizer.toJSON()));
    log(`tokenizer: byte-level BPE with ${tokenizer.vocabSize} tokens trained on the pretraining text in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  }
  const model: ModelConfig = { ...opts.model, vocab: tokenizer.vocabSize };
  validateModelConfig(model, 'model');
  if (base.maxLength > model.context) throw new Error(`train.base.maxLength ${base.maxLength} is larger than model.context ${model.context}`);

  const split = splitDocuments(opts.documents, base.validation, seed);
  const toExamples = (seqs: number[][]): TrainExample[] => seqs.map((ids) => ({ ids, lossMask: ids.map((_, t) => (t === 0 ? 0 : 1)) }));
  const trainSeqs = toExamples(packDocuments(tokenizer, split.train, base.maxLength));
  const validationSeqs = toExamples(packDocuments(tokenizer, split.validation, base.maxLength));
  if (trainSeqs.length === 0) throw new Error('train.base: the pretraining text packs into no sequence of 2 or more tokens');
  const stepsPerEpoch = Math.ceil(trainSeqs.length / base.batchSize);
  const totalSteps = base.steps ?? stepsPerEpoch * base.epochs;
  if (base.warmupSteps >= totalSteps) throw new Error(`train.base.warmupSteps (${base.warmupSteps}) must be smaller than the ${totalSteps} pretraining steps`);
  const lrEnd = base.lrEnd ?? base.lr / 10;
  const count = (seqs: TrainExample[]) => seqs.reduce((a, s) => a + s.ids.length, 0);
  log(
    `pretraining a GPT of ${countParams(model).toLocaleString('en-US')} parameters on ${backend.name}: ${split.train.length} documents, ${count(trainSeqs).toLocaleString('en-US')} tokens in ${trainSeqs.length} sequences of ${base.maxLength}; ` +
      `${totalSteps} steps of ${base.batchSize} (${(totalSteps / stepsPerEpoch).toFixed(2)} epochs); validation: ${split.validation.length} documents, ${count(validationSeqs).toLocaleString('en-US')} tokens -> ${dir}`,
  );

  // Resume from the mid-way checkpoint when there is one.
  const partialRoot = path.join(dir, 'partial');
  const partial = (await listCheckpoints(partialRoot)).find((c) => c.epoch === 0);
  let weights = initWeights(model, deriveSeed(seed, 'init'));
  let state = { step: 0, lossSum: 0, scoredSum: 0, tokens: 0, seconds: 0, curve: [] as BaseRecord['curve'] };
  let optimizer: { bin: Uint8Array; json: string; where: string } | undefined;
  if (partial) {
    const loaded = await loadCheckpoint(partial.dir);
    if (loaded.manifest.configHash !== hash) throw new Error(`${partial.dir} belongs to another base (hash ${loaded.manifest.configHash.slice(0, 16)}...); remove it`);
    weights = loaded.weights;
    const saved = loaded.manifest.extra?.state as typeof state | undefined;
    if (!saved || typeof saved.step !== 'number') throw new Error(`${partial.dir}: manifest.json has no pretraining state (extra.state); remove ${partialRoot} to restart the pretraining`);
    state = saved;
    optimizer = { bin: await fs.readFile(path.join(partial.dir, OPTIMIZER_BIN)), json: await fs.readFile(path.join(partial.dir, OPTIMIZER_JSON), 'utf8'), where: partial.dir };
    log(`resuming pretraining at step ${state.step} of ${totalSteps} from ${partial.dir}`);
  }

  const engine = await createEngine(backend, model, weights, opts.train);
  try {
    if (optimizer) engine.restoreOptimizer(optimizer.bin, optimizer.json, optimizer.where);
    const progress = createProgress('pretrain', totalSteps - state.step, { quiet: opts.quiet });
    const started = Date.now();
    const secondsSoFar = state.seconds;
    let stretchLoss = 0;
    let stretchScored = 0;
    let lastSave = Date.now();
    let sessionTokens = 0;
    const save = async (): Promise<void> => {
      const validationLoss = await meanLoss(engine, validationSeqs, base.batchSize);
      state.seconds = secondsSoFar + (Date.now() - started) / 1000;
      state.curve.push({ step: state.step, trainLoss: stretchLoss / Math.max(1, stretchScored), validationLoss, seconds: state.seconds });
      stretchLoss = 0;
      stretchScored = 0;
      if (state.step >= totalSteps) return;
      const opt = engine.serializeOptimizer();
      await writeCheckpoint(
        partialRoot,
        { model, weights: engine.weights(), tokenizer: tokenizer.toJSON(), extraFiles: { [OPTIMIZER_BIN]: opt.bin, [OPTIMIZER_JSON]: opt.json } },
        { epoch: 0, step: state.step, trainLoss: state.lossSum / Math.max(1, state.scoredSum), dataHash: hash, configHash: hash, backend: backend.name, extra: { state } },
      );
      lastSave = Date.now();
    };
    let batches: number[][] = [];
    let batchesEpoch = -1;
    while (state.step < totalSteps) {
      const epoch = Math.floor(state.step / stepsPerEpoch) + 1;
      if (epoch !== batchesEpoch) {
        batches = epochBatches(trainSeqs.length, base.batchSize, seed, 'pretrain', epoch);
        batchesEpoch = epoch;
      }
      const lr = pretrainLearningRate(state.step, totalSteps, base.lr, lrEnd, base.warmupSteps);
      // No dropout in pretraining (as nanoGPT's).
      const done = await engine.step(batches[state.step % stepsPerEpoch]!.map((i) => trainSeqs[i]!), lr, undefined, 0);
      state.lossSum += done.loss * done.scored;
      state.scoredSum += done.scored;
      stretchLoss += done.loss * done.scored;
      stretchScored += done.scored;
      state.tokens += done.tokens;
      sessionTokens += done.tokens;
      state.step += 1;
      const tps = sessionTokens / Math.max(1e-3, (Date.now() - started) / 1000);
      progress.tick(1, `epoch ${epoch} | loss ${(stretchLoss / Math.max(1, stretchScored)).toFixed(3)} | lr ${lr.toExponential(2)} | ${tps.toFixed(0)} tok/s`);
      if (state.step < totalSteps && Date.now() - lastSave >= base.checkpointMinutes * 60_000) {
        await save();
        log(`step ${state.step}/${totalSteps}: validation loss ${state.curve[state.curve.length - 1]!.validationLoss?.toFixed(4) ?? 'n/a'}, mid-way checkpoint saved`);
      }
      opts.onStep?.(state.step);
    }
    await save();
    progress.done();
    const last = state.curve[state.curve.length - 1]!;
    const record: BaseRecord = {
      hash,
      documents: { train: split.train.length, validation: split.validation.length },
      sequences: { train: trainSeqs.length, validation: validationSeqs.length },
      tokens: { train: count(trainSeqs), validation: count(validationSeqs) },
      steps: totalSteps,
      epochs: totalSteps / stepsPerEpoch,
      trainLoss: state.lossSum / Math.max(1, state.scoredSum),
      validationLoss: last.validationLoss,
      curve: state.curve,
      seconds: state.seconds,
      tokensPerSec: state.tokens / Math.max(1e-3, state.seconds),
      backend: backend.name,
      params: countParams(model),
      model,
      schedule: scheduleOf(base),
      provenance: opts.provenance,
    };
    // base.json first, the checkpoint last: the checkpoint's presence means the base is complete.
    await writeFileAtomic(path.join(dir, 'base.json'), JSON.stringify(record, null, 2) + '\n');
    const finalDir = await writeCheckpoint(
      dir,
      { model, weights: engine.weights(), tokenizer: tokenizer.toJSON() },
      { epoch: 0, step: totalSteps, trainLoss: record.trainLoss, dataHash: hash, configHash: hash, backend: backend.name, extra: { kind: 'pretrain', validationLoss: record.validationLoss } },
    );
    await fs.rm(partialRoot, { recursive: true, force: true });
    log(`base pretrained in ${record.seconds.toFixed(0)} s: train loss ${record.trainLoss.toFixed(4)}, validation loss ${record.validationLoss?.toFixed(4) ?? 'n/a'} -> ${finalDir}`);
    return { dir: finalDir, hash, tokenizer, record };
  } finally {
    await engine.dispose();
  }
}
