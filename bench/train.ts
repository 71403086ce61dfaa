// Training throughput: `node --import tsx bench/train.ts [--quick] [--backend auto|wasm|cpu|tensorflow] [--profile]`.
// Times the real optimisation step (src/train/run.ts trainStep: forward, backward, AdamW) on
// synthetic full-length token sequences for two model sizes: the embedded default experiment's
// model at its configured batch, and a ~1M-parameter GPT. Reports tokens/s (non-padding input
// tokens), achieved GFLOP/s (6 x parameters x tokens / s), step time and peak RSS, and, when
// /usr/bin/python3 has torch, the same model and step in PyTorch on 1 and 2 threads (ratios
// measured in the same run). --profile also prints the slowest tfjs kernels of one step.
// Last stdout line: one JSON object.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { countParams, validateModelConfig, type ModelConfig } from '../src/model/config.ts';
import { initWeights, toParams, disposeParams, maskedNll } from '../src/model/gpt.ts';
import { saveWeights } from '../src/model/weights.ts';
import { createAdamWState, disposeAdamW } from '../src/train/adamw.ts';
import { initBackend, type BackendPref } from '../src/train/backend.ts';
import { dropoutProfile, makeBatch, trainStep, type TrainExample } from '../src/train/run.ts';
import { defaultTrainConfig } from '../src/train/config.ts';
import { mulberry32 } from '../src/util/rng.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const log = (msg: string): void => console.log(msg);

function flagValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const value = process.argv[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`bench train: ${name} needs a value`);
  return value;
}

const quick = process.argv.includes('--quick');
const profile = process.argv.includes('--profile');
const backendPref = (flagValue('--backend') ?? 'auto') as BackendPref;
if (!['auto', 'wasm', 'cpu', 'tensorflow'].includes(backendPref)) throw new Error(`bench train: --backend must be auto|wasm|cpu|tensorflow, got ${backendPref}`);
// Steps are few because one step of the 1M model takes seconds on wasm; the first steps are
// slower (kernel set-up, allocation), hence the untimed warm-up.
const WARMUP = quick ? 1 : 2;
const STEPS = quick ? 3 : 10;
const LR = 1e-3;
const optimizerSettings = { beta1: defaultTrainConfig.beta1, beta2: defaultTrainConfig.beta2, eps: defaultTrainConfig.eps, weightDecay: defaultTrainConfig.weightDecay };

interface BenchSize {
  name: string;
  model: ModelConfig;
  batch: number;
  /** Tokens per sequence; the step sees length - 1 inputs (targets are shifted by one). */
  sequence: number;
  dropout: number[] | undefined;
}

interface SizeResult {
  name: string;
  model: ModelConfig;
  params: number;
  batch: number;
  length: number;
  trainTokensPerSec: number;
  gflops: number;
  stepMs: number;
  peakRssMB: number;
  initialLoss: number;
  lastLoss: number;
}

interface TorchResult {
  torch: string;
  initialLoss: number;
  threads: Array<{ threads: number; tokensPerSec: number; stepMs: number; finalLoss: number }>;
}

/** The embedded default experiment's model, batch and length, read from experiments/default.json. */
async function defaultExperimentSize(): Promise<BenchSize> {
  const file = path.join(here, '..', 'experiments', 'default.json');
  const config = JSON.parse(await fs.readFile(file, 'utf8')) as {
    tokenizer?: { vocabSize?: number };
    model?: Omit<ModelConfig, 'vocab'>;
    train?: { batchSize?: number; maxLength?: number; dropoutBottom?: number; dropoutTop?: number };
  };
  const vocab = config.tokenizer?.vocabSize;
  const batch = config.train?.batchSize ?? defaultTrainConfig.batchSize;
  const maxLength = config.train?.maxLength ?? defaultTrainConfig.maxLength;
  if (!config.model || vocab === undefined) throw new Error(`${file}: needs model and tokenizer.vocabSize`);
  const model: ModelConfig = { vocab, context: config.model.context, dModel: config.model.dModel, layers: config.model.layers, heads: config.model.heads };
  validateModelConfig(model, `${file}: model`);
  const bottom = config.train?.dropoutBottom ?? defaultTrainConfig.dropoutBottom;
  const top = config.train?.dropoutTop ?? defaultTrainConfig.dropoutTop;
  return { name: 'default', model, batch, sequence: Math.min(maxLength, model.context), dropout: dropoutProfile(model.layers, bottom, top) };
}

// ~1.1M parameters: the shape of the reference figures in the issue (PyTorch ~7,300 tokens/s on
// one thread, tfjs-wasm ~700). No dropout.
const oneMillion: BenchSize = { name: '1m', model: { vocab: 2048, context: 128, dModel: 128, layers: 4, heads: 4 }, batch: 16, sequence: 128, dropout: undefined };

/** Full-length sequences of uniformly random token ids, seeded. */
function syntheticRows(size: BenchSize, seed: number): number[][] {
  const rng = mulberry32(seed);
  return Array.from({ length: size.batch }, () => Array.from({ length: size.sequence }, () => Math.floor(rng() * size.model.vocab)));
}

function toExamples(rows: number[][]): TrainExample[] {
  return rows.map((ids) => ({ ids, lossMask: ids.map((_, t) => (t === 0 ? 0 : 1)) }));
}

/** Time of each tfjs kernel of one training step, summed by kernel and input shapes, slowest first. */
async function profileStep(run: () => void): Promise<Array<{ kernel: string; ms: number; calls: number }>> {
  const info = await tf.profile(run);
  const byKey = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    // customGrad ops appear as a 'forward' kernel wrapping the kernels they run: counted once, inside.
    if (k.name === 'forward') continue;
    const key = `${k.name} ${k.inputShapes.map((s) => `[${s?.join('x')}]`).join(' ')}`;
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const entry = byKey.get(key) ?? { ms: 0, calls: 0 };
    entry.ms += ms;
    entry.calls += 1;
    byKey.set(key, entry);
  }
  return [...byKey].map(([kernel, v]) => ({ kernel, ...v })).sort((a, b) => b.ms - a.ms);
}

async function benchSize(size: BenchSize, rows: number[][]): Promise<SizeResult> {
  const params = toParams(initWeights(size.model, 11));
  const state = createAdamWState(params);
  const examples = toExamples(rows);
  let peakRss = process.memoryUsage().rss;
  try {
    // Loss before any update, without dropout: compared with PyTorch's on the same weights.
    const probe = makeBatch(examples);
    const initialLoss = tf.tidy(() => maskedNll(params, size.model, probe.inputs, probe.targets, probe.mask).dataSync()[0]!);
    for (const t of [probe.inputs, probe.targets, probe.mask]) t.dispose();

    let stepIndex = 0;
    const step = (): { loss: number; tokens: number } => {
      const batch = makeBatch(examples);
      try {
        const loss = trainStep(params, size.model, state, batch, LR, optimizerSettings, size.dropout, 1000 + stepIndex++);
        return { loss, tokens: batch.tokens };
      } finally {
        for (const t of [batch.inputs, batch.targets, batch.mask]) t.dispose();
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }
    };
    for (let i = 0; i < WARMUP; i++) step();
    let tokens = 0;
    let lastLoss = NaN;
    const start = performance.now();
    for (let i = 0; i < STEPS; i++) {
      const r = step();
      tokens += r.tokens;
      lastLoss = r.loss;
    }
    const seconds = (performance.now() - start) / 1000;
    const nParams = countParams(size.model);
    const tokensPerSec = tokens / seconds;

    if (profile) {
      const kernels = await profileStep(() => void step());
      const total = kernels.reduce((a, k) => a + k.ms, 0);
      log(`profile of one ${size.name} step (${total.toFixed(0)} ms of kernel time; slowest kernels by name and input shapes):`);
      for (const k of kernels.slice(0, 15)) log(`  ${k.ms.toFixed(1).padStart(8)} ms ${((100 * k.ms) / total).toFixed(1).padStart(5)}%  x${k.calls}  ${k.kernel}`);
    }
    return {
      name: size.name,
      model: size.model,
      params: nParams,
      batch: size.batch,
      length: size.sequence - 1,
      trainTokensPerSec: tokensPerSec,
      gflops: (6 * nParams * tokensPerSec) / 1e9,
      stepMs: (1000 * seconds) / STEPS,
      peakRssMB: peakRss / 2 ** 20,
      initialLoss,
      lastLoss,
    };
  } finally {
    disposeParams(params);
    disposeAdamW(state);
  }
}

function hasTorch(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
}

async function pytorchBaseline(size: BenchSize, rows: number[][], dir: string): Promise<TorchResult | null> {
  const sizeDir = path.join(dir, size.name);
  await fs.mkdir(sizeDir, { recursive: true });
  await saveWeights(sizeDir, initWeights(size.model, 11));
  const tokensFile = path.join(sizeDir, 'tokens.bin');
  await fs.writeFile(tokensFile, new Uint8Array(BigInt64Array.from(rows.flat().map(BigInt)).buffer));
  const settings = { ...size.model, batch: size.batch, length: size.sequence - 1, dropout: size.dropout ?? null, lr: LR, ...optimizerSettings, warmup: WARMUP, steps: STEPS };
  const res = spawnSync('/usr/bin/python3', [path.join(here, 'train-torch.py'), sizeDir, JSON.stringify(settings), tokensFile], {
    encoding: 'utf8',
    // Keeps glibc from returning freed activations to the OS on every step (as bench/eval.ts).
    env: { ...process.env, MALLOC_TOP_PAD_: '4294967296' },
  });
  if (res.status !== 0) {
    console.error(`pytorch baseline (${size.name}) failed: ${res.stderr.slice(-2000)}`);
    return null;
  }
  return JSON.parse(res.stdout.trim().split('\n').pop()!) as TorchResult;
}

const round = (x: number, digits = 0): number => +x.toFixed(digits);

async function main(): Promise<void> {
  const backend = await initBackend(backendPref);
  const sizes = [await defaultExperimentSize(), oneMillion];
  log(`backend ${backend.name} (${backend.detail}); ${WARMUP} warm-up + ${STEPS} timed steps per size; ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(2)} (shared with other work: figures are noisy)`);
  const results: SizeResult[] = [];
  const rowsBySize = new Map<string, number[][]>();
  for (const size of sizes) {
    const rows = syntheticRows(size, 5);
    rowsBySize.set(size.name, rows);
    const r = await benchSize(size, rows);
    results.push(r);
    log(
      `tfjs ${backend.name} ${r.name} ${JSON.stringify(r.model)}: ${r.params.toLocaleString('en-US')} parameters, batch ${r.batch} x ${r.length}` +
        `${size.dropout ? `, dropout [${size.dropout.map((x) => x.toFixed(2)).join(', ')}]` : ''}: ${r.trainTokensPerSec.toFixed(0)} tokens/s, ${r.gflops.toFixed(2)} GFLOP/s, ` +
        `${r.stepMs.toFixed(0)} ms/step, peak RSS ${r.peakRssMB.toFixed(0)} MB, loss ${r.initialLoss.toFixed(3)} -> ${r.lastLoss.toFixed(3)}`,
    );
  }

  let torch: Array<{ name: string; torch: string; initialLoss: number; threads: Array<TorchResult['threads'][number] & { gflops: number }> }> | null = null;
  let ratios: Record<string, { threads1: number; threads2: number }> | null = null;
  if (!hasTorch()) {
    log('pytorch: not installed for /usr/bin/python3 (apt-get install python3-torch libopenblas0-openmp); torch = null');
  } else {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-bench-train-'));
    try {
      torch = [];
      ratios = {};
      for (const size of sizes) {
        const t = await pytorchBaseline(size, rowsBySize.get(size.name)!, dir);
        if (!t) continue;
        const ours = results.find((r) => r.name === size.name)!;
        const params = ours.params;
        const [one, two] = t.threads;
        torch.push({ name: size.name, torch: t.torch, initialLoss: t.initialLoss, threads: t.threads.map((x) => ({ ...x, gflops: (6 * params * x.tokensPerSec) / 1e9 })) });
        ratios[size.name] = { threads1: one!.tokensPerSec / ours.trainTokensPerSec, threads2: two!.tokensPerSec / ours.trainTokensPerSec };
        const agree = Math.abs(t.initialLoss - ours.initialLoss) / Math.abs(t.initialLoss);
        log(
          `pytorch ${t.torch} ${size.name}: ${one!.tokensPerSec.toFixed(0)} tokens/s on 1 thread (${((6 * params * one!.tokensPerSec) / 1e9).toFixed(2)} GFLOP/s, ${one!.stepMs.toFixed(0)} ms/step), ` +
            `${two!.tokensPerSec.toFixed(0)} on 2 (${((6 * params * two!.tokensPerSec) / 1e9).toFixed(2)} GFLOP/s); torch/tfjs ${ratios[size.name]!.threads1.toFixed(1)}x (1 thread), ` +
            `${ratios[size.name]!.threads2.toFixed(1)}x (2); initial loss ${t.initialLoss.toFixed(4)} vs tfjs ${ours.initialLoss.toFixed(4)} (relative difference ${agree.toExponential(1)})`,
        );
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  console.log(
    JSON.stringify({
      bench: 'train',
      quick,
      backend: backend.name,
      backendDetail: backend.detail,
      steps: STEPS,
      // Other work on the 2 cores shows here; 2-thread figures collapse when the second core is busy.
      loadAverage1m: round(os.loadavg()[0]!, 2),
      sizes: results.map((r) => ({
        name: r.name,
        params: r.params,
        batch: r.batch,
        length: r.length,
        trainTokensPerSec: round(r.trainTokensPerSec),
        gflops: round(r.gflops, 3),
        stepMs: round(r.stepMs, 1),
        peakRssMB: round(r.peakRssMB),
      })),
      torch:
        torch?.map((t) => ({
          name: t.name,
          version: t.torch,
          threads: t.threads.map((x) => ({ threads: x.threads, trainTokensPerSec: round(x.tokensPerSec), gflops: round(x.gflops, 3), stepMs: round(x.stepMs, 1) })),
        })) ?? null,
      ratioTorchOverTfjs: ratios === null ? null : Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, { threads1: round(v.threads1, 2), threads2: round(v.threads2, 2) }])),
    }),
  );
}

await main();
