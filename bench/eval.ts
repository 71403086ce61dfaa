// Evaluation throughput: `node --import tsx bench/eval.ts [--quick]`.
// Measures, in one run: onnxruntime-node's own 1024x1024 MatMul rate; perplexity scoring through
// the real pool path (piscina workers, scoreBatch on the graph's token_logprobs) with 1 and 2 workers
// of 1 thread each; generation tokens/s with and without the KV cache; and PyTorch on CPU scoring
// the same weights and tokens when /usr/bin/python3 has torch. Last stdout line: one JSON object.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { countParams, type ModelConfig } from '../src/model/config.ts';
import { exportOnnx } from '../src/model/onnx-export.ts';
import { saveWeights, type NamedWeights } from '../src/model/weights.ts';
import { DecoderSession } from '../src/eval/session.ts';
import { generateIds } from '../src/eval/generate.ts';
import { defaultGenerationConfig } from '../src/eval/config.ts';
import type { EvalTaskResult, PerplexityTask } from '../src/eval/tasks.ts';
import type { ScoringExample } from '../src/eval/scoring.ts';
import { mulberry32 } from '../src/util/rng.ts';
import { matmulSession, randomWeights as randomWeightsOf } from './common.ts';

const quick = process.argv.includes('--quick');
const seconds = quick ? 3 : 10;
const here = path.dirname(fileURLToPath(import.meta.url));
const log = (msg: string): void => console.log(msg);

// ~1.1M parameters, batch 8 x 256, like the reference measurement in the brief.
const model: ModelConfig = { vocab: 2048, context: 256, dModel: 128, layers: 4, heads: 4 };
const BATCH = 8;
const SEQ = 256;

const randomWeights = (seed: number): NamedWeights => randomWeightsOf(model, seed, 0.05);

async function timeLoop(fn: () => Promise<unknown>, budgetSeconds: number): Promise<{ runs: number; seconds: number }> {
  await fn(); // warm-up
  const start = performance.now();
  let runs = 0;
  while (performance.now() - start < budgetSeconds * 1000) {
    await fn();
    runs++;
  }
  return { runs, seconds: (performance.now() - start) / 1000 };
}

async function matmulGflops(threads: number): Promise<number> {
  const { session, a, flop } = await matmulSession(threads);
  const { runs, seconds: s } = await timeLoop(() => session.run({ a }), seconds / 3);
  await session.release();
  return (flop * runs) / s / 1e9;
}

function tokenBatch(seed: number): number[][] {
  const rng = mulberry32(seed);
  return Array.from({ length: BATCH }, () => Array.from({ length: SEQ }, () => Math.floor(rng() * model.vocab)));
}

function scoringTask(onnxPath: string, rows: number[][]): PerplexityTask {
  const examples: ScoringExample[] = rows.map((ids, i) => ({ id: `b${i}`, ids, lossMask: ids.map((_, t) => (t === 0 ? 0 : 1)), bytes: ids.length }));
  return { kind: 'perplexity', onnxPath, model, threads: 1, examples };
}

/** Scoring through piscina + the real worker: scored tokens per second with `workers` workers of 1 thread. */
async function poolScoring(onnxPath: string, workers: number): Promise<{ tokensPerSec: number; nll: number }> {
  const pool = new Piscina({ filename: new URL('../src/eval/worker.mjs', import.meta.url).href, minThreads: workers, maxThreads: workers });
  const task = scoringTask(onnxPath, tokenBatch(1));
  const tokensPerTask = BATCH * (SEQ - 1);
  // Warm-up: each worker loads tsx, onnxruntime and the session.
  const warm = (await Promise.all(Array.from({ length: workers * 2 }, () => pool.run(task)))) as EvalTaskResult[];
  const first = warm[0]!;
  const nll = first.kind === 'perplexity' ? first.scores.reduce((a, s) => a + s.nll, 0) : NaN;
  const start = performance.now();
  let done = 0;
  const deadline = start + seconds * 1000;
  // Keep every worker busy until the deadline (2 tasks queued per worker).
  await Promise.all(
    Array.from({ length: workers * 2 }, async () => {
      while (performance.now() < deadline) {
        await pool.run(task);
        done++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  await pool.destroy();
  return { tokensPerSec: (done * tokensPerTask) / elapsed, nll };
}

async function generationRate(onnxPath: string, useCache: boolean, newTokens: number): Promise<number> {
  const session = await DecoderSession.create(onnxPath, model, { threads: 1 });
  const prompt = tokenBatch(2)[0]!.slice(0, 32);
  const cfg = { ...defaultGenerationConfig, maxNewTokens: newTokens };
  let tokens = 0;
  const { seconds: s } = await timeLoop(async () => {
    const out = await generateIds(session, prompt, cfg, { seed: 1, eot: -1, useCache });
    tokens += out.newTokens;
  }, seconds / 2);
  const perRun = cfg.maxNewTokens;
  await session.release();
  return (tokens - perRun) / s; // the warm-up run's tokens are not timed
}

function pytorchBaseline(weightsDir: string, tokensFile: string): { tokensPerSec1: number; tokensPerSec2: number; nll: number; torch: string } | null {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  const res = spawnSync('/usr/bin/python3', [path.join(here, 'eval-torch.py'), weightsDir, JSON.stringify({ ...model, batch: BATCH, seq: SEQ }), tokensFile, String(seconds / 2)], {
    encoding: 'utf8',
    env: { ...process.env, MALLOC_TOP_PAD_: '4294967296' },
  });
  if (res.status !== 0) {
    console.error(`pytorch baseline failed: ${res.stderr.slice(-2000)}`);
    return null;
  }
  return JSON.parse(res.stdout.trim().split('\n').pop()!);
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-bench-eval-'));
  try {
    const params = countParams(model);
    log(`model ${JSON.stringify(model)}: ${params} parameters; scoring batch ${BATCH} x ${SEQ}; ${os.availableParallelism()} cores (shared with other work: figures are noisy)`);
    const weights = randomWeights(7);
    const onnxPath = path.join(dir, 'model.onnx');
    await exportOnnx(model, weights, onnxPath);
    await saveWeights(dir, weights);
    const tokensFile = path.join(dir, 'tokens.bin');
    await fs.writeFile(tokensFile, new Uint8Array(BigInt64Array.from(tokenBatch(1).flat().map(BigInt)).buffer));

    const matmul1 = await matmulGflops(1);
    const matmul2 = await matmulGflops(2);
    log(`onnxruntime MatMul 1024x1024: ${matmul1.toFixed(1)} GFLOP/s on 1 thread, ${matmul2.toFixed(1)} on 2 threads`);

    const one = await poolScoring(onnxPath, 1);
    const two = await poolScoring(onnxPath, 2);
    const gflops1 = (2 * params * one.tokensPerSec) / 1e9;
    const gflops2 = (2 * params * two.tokensPerSec) / 1e9;
    log(`scoring (pool, 1 thread per worker): 1 worker ${one.tokensPerSec.toFixed(0)} tokens/s (${gflops1.toFixed(1)} GFLOP/s, ${((100 * gflops1) / matmul1).toFixed(0)}% of MatMul); 2 workers ${two.tokensPerSec.toFixed(0)} tokens/s (${gflops2.toFixed(1)} GFLOP/s), scaling ${(two.tokensPerSec / one.tokensPerSec).toFixed(2)}x`);

    // Generating 4x more tokens: with the cache the time per token should barely move (each step
    // feeds one token); without it, every step re-reads the whole sequence and the mean cost grows.
    const long = quick ? 64 : 128;
    const short = long / 4;
    const genCached = await generationRate(onnxPath, true, long);
    const genUncached = await generationRate(onnxPath, false, long);
    const genCachedShort = await generationRate(onnxPath, true, short);
    const genUncachedShort = await generationRate(onnxPath, false, short);
    const ms = (tokensPerSec: number): string => (1000 / tokensPerSec).toFixed(2);
    log(`generation (1 thread, prompt 32, ${long} new tokens): ${genCached.toFixed(0)} tokens/s with KV cache, ${genUncached.toFixed(0)} without`);
    log(`  mean ms per new token, ${short} -> ${long} new tokens: with KV cache ${ms(genCachedShort)} -> ${ms(genCached)} (x${(genCachedShort / genCached).toFixed(2)}), without ${ms(genUncachedShort)} -> ${ms(genUncached)} (x${(genUncachedShort / genUncached).toFixed(2)})`);

    const torch = pytorchBaseline(dir, tokensFile);
    let vsPytorch: number | null = null;
    let vsPytorch2: number | null = null;
    if (torch) {
      vsPytorch = one.tokensPerSec / torch.tokensPerSec1;
      vsPytorch2 = two.tokensPerSec / torch.tokensPerSec2;
      const agree = Math.abs(torch.nll - one.nll) / Math.abs(torch.nll);
      log(`pytorch ${torch.torch}: ${torch.tokensPerSec1.toFixed(0)} tokens/s on 1 thread, ${torch.tokensPerSec2.toFixed(0)} on 2; onnx/pytorch ${vsPytorch.toFixed(2)}x (1 thread), ${vsPytorch2.toFixed(2)}x (2); batch NLL relative difference ${agree.toExponential(1)}`);
    } else {
      log('pytorch: not installed for /usr/bin/python3 (apt-get install python3-torch libopenblas0-openmp); vsPytorch = null');
    }

    console.log(
      JSON.stringify({
        bench: 'eval',
        quick,
        params,
        scoringTokensPerSec: Math.round(one.tokensPerSec),
        scoringTokensPerSec2Workers: Math.round(two.tokensPerSec),
        gflops: +gflops1.toFixed(2),
        gflops2Workers: +gflops2.toFixed(2),
        matmulGflops: +matmul1.toFixed(2),
        matmulGflops2Threads: +matmul2.toFixed(2),
        fractionOfMatmul: +(gflops1 / matmul1).toFixed(3),
        scaling2Workers: +(two.tokensPerSec / one.tokensPerSec).toFixed(3),
        generationTokensPerSec: Math.round(genCached),
        generationNoCacheTokensPerSec: Math.round(genUncached),
        generationNewTokens: long,
        generationTokensPerSecShort: Math.round(genCachedShort),
        generationNoCacheTokensPerSecShort: Math.round(genUncachedShort),
        generationShortNewTokens: short,
        vsPytorch: vsPytorch === null ? null : +vsPytorch.toFixed(3),
        vsPytorch2Threads: vsPytorch2 === null ? null : +vsPytorch2.toFixed(3),
        pytorchTokensPerSec: torch ? Math.round(torch.tokensPerSec1) : null,
      }),
    );
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
