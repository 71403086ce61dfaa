// Training throughput: `node --import tsx bench/train.ts [--quick] [--backend wasm|cpu|tensorflow]
// [--sizes default,1m,6m] [--engines tfjs,ort,torch] [--profile] [--tfjs-6m]`.
// Times the real optimisation step (forward, backward, AdamW) on synthetic full-length token
// sequences for three model sizes: the embedded default experiment's model at its configured
// batch, a ~1M-parameter GPT and a ~6M one, with three engines in one run: tfjs (wasm by default,
// src/train/tfjs-engine.ts), the onnxruntime engine (src/train/ort-engine.ts; bench/train-ort.ts
// in a process of its own per thread count) on 1 and 2 threads, and, when /usr/bin/python3 has
// torch, the same model and step in PyTorch on 1 and 2 threads. Reports tokens/s (non-padding
// input tokens), achieved GFLOP/s (6 x parameters x tokens / s), step time, peak RSS, for ort the
// fraction of onnxruntime's own MatMul rate on the same threads (measured in the same child), and
// every engine's ratio to PyTorch at the same thread count (tfjs-wasm runs on one thread).
// --profile prints the slowest tfjs kernels and onnxruntime's op types of one step.
// Last stdout line: one JSON object with a row per (engine, size, threads).
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
const backendPref = (flagValue('--backend') ?? 'wasm') as BackendPref;
if (!['wasm', 'cpu', 'tensorflow'].includes(backendPref)) throw new Error(`bench train: --backend (the tfjs engine's backend) must be wasm|cpu|tensorflow, got ${backendPref}`);
const sizeNames = (flagValue('--sizes') ?? 'default,1m,6m').split(',');
const engines = new Set((flagValue('--engines') ?? 'tfjs,ort,torch').split(','));
for (const e of engines) if (!['tfjs', 'ort', 'torch'].includes(e)) throw new Error(`bench train: unknown engine ${e} in --engines (tfjs, ort, torch)`);
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
  /** ru_maxrss of the python process (both thread counts). */
  peakRssMB?: number;
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
// ~5.9M parameters (issue 14's size for the memory target: under 2 GB peak RSS). No dropout.
const sixMillion: BenchSize = { name: '6m', model: { vocab: 4096, context: 256, dModel: 256, layers: 6, heads: 4 }, batch: 16, sequence: 256, dropout: undefined };
/** tfjs-wasm aborts on the 6m size (its wasm heap runs out: "RuntimeError: Aborted()", which
 *  kills the process), so it is left out there unless --tfjs-6m asks for it (with fewer steps). */
const tfjsSixMillion = process.argv.includes('--tfjs-6m');
const stepsFor = (size: BenchSize, engine: string): { warmup: number; steps: number } =>
  engine === 'tfjs' && size.name === '6m' ? { warmup: 1, steps: quick ? 1 : 2 } : { warmup: WARMUP, steps: STEPS };

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
    const { warmup, steps } = stepsFor(size, 'tfjs');
    for (let i = 0; i < warmup; i++) step();
    let tokens = 0;
    let lastLoss = NaN;
    const start = performance.now();
    for (let i = 0; i < steps; i++) {
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
      stepMs: (1000 * seconds) / steps,
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

/** Weights (initWeights seed 11) and tokens (int64 [batch, sequence]) on disk for the child processes. */
async function writeInputs(size: BenchSize, rows: number[][], dir: string): Promise<{ sizeDir: string; tokensFile: string }> {
  const sizeDir = path.join(dir, size.name);
  await fs.mkdir(sizeDir, { recursive: true });
  await saveWeights(sizeDir, initWeights(size.model, 11));
  const tokensFile = path.join(sizeDir, 'tokens.bin');
  await fs.writeFile(tokensFile, new Uint8Array(BigInt64Array.from(rows.flat().map(BigInt)).buffer));
  return { sizeDir, tokensFile };
}

async function pytorchBaseline(size: BenchSize, inputs: { sizeDir: string; tokensFile: string }): Promise<TorchResult | null> {
  const settings = { ...size.model, batch: size.batch, length: size.sequence - 1, dropout: size.dropout ?? null, lr: LR, ...optimizerSettings, warmup: WARMUP, steps: STEPS };
  const res = spawnSync('/usr/bin/python3', [path.join(here, 'train-torch.py'), inputs.sizeDir, JSON.stringify(settings), inputs.tokensFile], {
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

interface OrtResult {
  ort: string;
  threads: number;
  tokensPerSec: number;
  stepMs: number;
  peakRssMB: number;
  initialLoss: number;
  lastLoss: number;
  matmulGflops: number;
  profile: Array<{ op: string; ms: number; calls: number }> | null;
}

/** The onnxruntime engine on `threads` threads, in a child process (bench/train-ort.ts). */
async function ortRun(size: BenchSize, inputs: { sizeDir: string; tokensFile: string }, threads: number): Promise<OrtResult | null> {
  const settings = { model: size.model, batch: size.batch, sequence: size.sequence, dropout: size.dropout ?? null, lr: LR, ...optimizerSettings, warmup: WARMUP, steps: STEPS, threads, tokensFile: inputs.tokensFile, profileDir: profile ? inputs.sizeDir : undefined };
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'train-ort.ts'), JSON.stringify(settings)], { encoding: 'utf8', env: { ...process.env, LIMA_QUIET: '1' } });
  if (res.status !== 0) {
    console.error(`ort engine (${size.name}, ${threads} threads) failed: ${res.stderr.slice(-2000)}`);
    return null;
  }
  return JSON.parse(res.stdout.trim().split('\n').pop()!) as OrtResult;
}

interface Row {
  engine: 'tfjs' | 'ort' | 'torch';
  detail: string;
  size: string;
  threads: number;
  params: number;
  batch: number;
  length: number;
  trainTokensPerSec: number;
  gflops: number;
  stepMs: number;
  /** Peak RSS of the process that ran it (tfjs: the bench process, all sizes so far; torch: both thread counts). */
  peakRssMB: number | null;
  /** onnxruntime's 1024^3 MatMul GFLOP/s on the same threads, same process (ort rows). */
  matmulGflops?: number;
  fractionOfMatmul?: number;
  /** tokens/s over PyTorch's at the same thread count (null without torch). */
  ratioToTorch: number | null;
  initialLoss: number | null;
}

const round = (x: number, digits = 0): number => +x.toFixed(digits);

async function main(): Promise<void> {
  const allSizes = [await defaultExperimentSize(), oneMillion, sixMillion];
  const sizes = sizeNames.map((n) => allSizes.find((z) => z.name === n) ?? (() => { throw new Error(`bench train: unknown size ${n} (default, 1m, 6m)`); })());
  const backend = engines.has('tfjs') ? await initBackend(backendPref) : null;
  const torchAvailable = engines.has('torch') && hasTorch();
  log(`engines ${[...engines].join(', ')}${backend ? ` (tfjs on ${backend.name}: ${backend.detail})` : ''}; ${WARMUP} warm-up + ${STEPS} timed steps per size; ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(2)} (shared with other work: figures are noisy)`);
  if (engines.has('torch') && !torchAvailable) log('pytorch: not installed for /usr/bin/python3 (apt-get install python3-torch libopenblas0-openmp); no torch rows');
  const rows: Row[] = [];
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-bench-train-'));
  try {
    for (const size of sizes) {
      const params = countParams(size.model);
      const common = { size: size.name, params, batch: size.batch, length: size.sequence - 1 };
      const tokenRows = syntheticRows(size, 5);
      const inputs = await writeInputs(size, tokenRows, dir);
      const sizeRows: Row[] = [];
      if (backend && size.name === '6m' && !tfjsSixMillion) log(`tfjs ${backend.name} 6m: skipped (the wasm heap runs out and aborts the process; --tfjs-6m to try)`);
      else if (backend) {
        const r = await benchSize(size, tokenRows);
        sizeRows.push({ engine: 'tfjs', detail: backend.name, ...common, threads: 1, trainTokensPerSec: r.trainTokensPerSec, gflops: r.gflops, stepMs: r.stepMs, peakRssMB: r.peakRssMB, ratioToTorch: null, initialLoss: r.initialLoss });
        log(`tfjs ${backend.name} ${size.name} ${JSON.stringify(size.model)}: ${params.toLocaleString('en-US')} parameters, batch ${size.batch} x ${size.sequence - 1}${size.dropout ? `, dropout [${size.dropout.map((x) => x.toFixed(2)).join(', ')}]` : ''}: ${r.trainTokensPerSec.toFixed(0)} tokens/s, ${r.gflops.toFixed(2)} GFLOP/s, ${r.stepMs.toFixed(0)} ms/step, peak RSS ${r.peakRssMB.toFixed(0)} MB, loss ${r.initialLoss.toFixed(3)} -> ${r.lastLoss.toFixed(3)}`);
      }
      if (engines.has('ort')) {
        for (const threads of [1, 2]) {
          const r = await ortRun(size, inputs, threads);
          if (!r) continue;
          const gflops = (6 * params * r.tokensPerSec) / 1e9;
          sizeRows.push({ engine: 'ort', detail: `onnxruntime-node ${r.ort}`, ...common, threads, trainTokensPerSec: r.tokensPerSec, gflops, stepMs: r.stepMs, peakRssMB: r.peakRssMB, matmulGflops: r.matmulGflops, fractionOfMatmul: gflops / r.matmulGflops, ratioToTorch: null, initialLoss: r.initialLoss });
          log(`ort ${size.name} ${threads} thread${threads > 1 ? 's' : ''}: ${r.tokensPerSec.toFixed(0)} tokens/s, ${gflops.toFixed(2)} GFLOP/s (${((100 * gflops) / r.matmulGflops).toFixed(0)}% of onnxruntime's MatMul, ${r.matmulGflops.toFixed(0)} GFLOP/s here), ${r.stepMs.toFixed(0)} ms/step, peak RSS ${r.peakRssMB.toFixed(0)} MB, loss ${r.initialLoss.toFixed(4)} -> ${r.lastLoss.toFixed(3)}`);
          if (r.profile) {
            const total = r.profile.reduce((a, p) => a + p.ms, 0);
            log(`  onnxruntime profile of one ${size.name} step on ${threads} thread(s) (${total.toFixed(0)} ms of kernel time), by op type:`);
            for (const p of r.profile.slice(0, 15)) log(`  ${p.ms.toFixed(1).padStart(8)} ms ${((100 * p.ms) / total).toFixed(1).padStart(5)}%  x${p.calls}  ${p.op}`);
          }
        }
      }
      if (torchAvailable) {
        const t = await pytorchBaseline(size, inputs);
        if (t) {
          for (const x of t.threads) {
            sizeRows.push({ engine: 'torch', detail: `pytorch ${t.torch}`, ...common, threads: x.threads, trainTokensPerSec: x.tokensPerSec, gflops: (6 * params * x.tokensPerSec) / 1e9, stepMs: x.stepMs, peakRssMB: t.peakRssMB ?? null, ratioToTorch: 1, initialLoss: t.initialLoss });
          }
          log(`pytorch ${t.torch} ${size.name}: ${t.threads.map((x) => `${x.tokensPerSec.toFixed(0)} tokens/s on ${x.threads} thread(s) (${((6 * params * x.tokensPerSec) / 1e9).toFixed(2)} GFLOP/s)`).join(', ')}; initial loss ${t.initialLoss.toFixed(4)}`);
        }
      }
      for (const row of sizeRows) {
        const torchRow = sizeRows.find((r) => r.engine === 'torch' && r.threads === row.threads);
        row.ratioToTorch = torchRow ? row.trainTokensPerSec / torchRow.trainTokensPerSec : null;
      }
      const summary = sizeRows.filter((r) => r.engine !== 'torch').map((r) => `${r.engine} ${r.threads}t ${r.ratioToTorch === null ? 'n/a' : `${r.ratioToTorch.toFixed(2)}x`}`);
      if (torchAvailable) log(`${size.name}: tokens/s relative to PyTorch at the same threads: ${summary.join(', ')}`);
      const tfjsRow = sizeRows.find((r) => r.engine === 'tfjs');
      const ortRow = sizeRows.find((r) => r.engine === 'ort' && r.threads === 2);
      if (tfjsRow && ortRow) log(`${size.name}: ort on 2 threads / tfjs ${tfjsRow.detail}: ${(ortRow.trainTokensPerSec / tfjsRow.trainTokensPerSec).toFixed(1)}x`);
      rows.push(...sizeRows);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  console.log(
    JSON.stringify({
      bench: 'train',
      quick,
      steps: STEPS,
      // Other work on the 2 cores shows here; 2-thread figures collapse when the second core is busy.
      loadAverage1m: round(os.loadavg()[0]!, 2),
      rows: rows.map((r) => ({
        ...r,
        trainTokensPerSec: round(r.trainTokensPerSec),
        gflops: round(r.gflops, 3),
        stepMs: round(r.stepMs, 1),
        peakRssMB: r.peakRssMB === null ? null : round(r.peakRssMB),
        ...(r.matmulGflops !== undefined ? { matmulGflops: round(r.matmulGflops, 1), fractionOfMatmul: round(r.fractionOfMatmul!, 3) } : {}),
        ratioToTorch: r.ratioToTorch === null ? null : round(r.ratioToTorch, 2),
        initialLoss: r.initialLoss === null ? null : round(r.initialLoss, 5),
      })),
    }),
  );
}

await main();
