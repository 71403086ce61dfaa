// The onnxruntime training engine's half of bench/train.ts, in a process of its own per
// (size, threads) so that its peak RSS and thread count are its own. argv[2]: settings json
// ({ model, batch, sequence, dropout, lr, beta1, beta2, eps, weightDecay, warmup, steps,
// threads, tokensFile, profileDir? }), tokens file: int64 [batch, sequence]. Prints one JSON line:
// tokens/s, step time, peak RSS (VmHWM), losses, onnxruntime's own 1024^3 MatMul rate on the same
// threads, and with profileDir the op types of one profiled step, slowest first.
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../src/model/config.ts';
import { initWeights } from '../src/model/gpt.ts';
import { createOrtEngine, OrtTrainSession } from '../src/train/ort-engine.ts';
import { dropoutMasks, makeBatchArrays, type TrainExample } from '../src/train/batch.ts';
import { matmulSession } from './common.ts';

interface Settings {
  model: ModelConfig;
  batch: number;
  sequence: number;
  dropout: number[] | null;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  warmup: number;
  steps: number;
  threads: number;
  tokensFile: string;
  profileDir?: string;
  spinning?: boolean;
}

const s = JSON.parse(process.argv[2]!) as Settings;

/** VmHWM: the process's peak resident set, in MB. */
function peakRssMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 2 ** 20;
}

async function matmulGflops(threads: number, seconds: number): Promise<number> {
  const { session, a, flop } = await matmulSession(threads);
  await session.run({ a });
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    await session.run({ a });
    runs++;
  }
  const elapsed = (performance.now() - start) / 1000;
  await session.release();
  return (flop * runs) / elapsed / 1e9;
}

/** Sums an onnxruntime profile (chrome-trace JSON) by op type, slowest first. */
async function profileByOp(file: string, byNode = false): Promise<Array<{ op: string; ms: number; calls: number }>> {
  const events = JSON.parse(await fs.readFile(file, 'utf8')) as Array<{ cat?: string; name?: string; ts?: number; dur?: number; args?: { op_name?: string } }>;
  const lastRun = Math.max(...events.filter((e) => e.cat === 'Session' && e.name === 'model_run').map((e) => e.ts ?? 0));
  const byOp = new Map<string, { ms: number; calls: number }>();
  for (const e of events) {
    if ((e.ts ?? 0) < lastRun || e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
    const key = byNode ? `${e.args.op_name} ${e.name.replace(/_kernel_time$/, '')}` : e.args.op_name;
    const entry = byOp.get(key) ?? { ms: 0, calls: 0 };
    entry.ms += (e.dur ?? 0) / 1000;
    entry.calls += 1;
    byOp.set(key, entry);
  }
  await fs.rm(file, { force: true });
  return [...byOp].map(([op, v]) => ({ op, ms: +v.ms.toFixed(2), calls: v.calls })).sort((a, b) => b.ms - a.ms);
}

async function main(): Promise<void> {
  const flat = new BigInt64Array(new Uint8Array(await fs.readFile(s.tokensFile)).buffer);
  const examples: TrainExample[] = [];
  for (let b = 0; b < s.batch; b++) {
    const ids = Array.from(flat.subarray(b * s.sequence, (b + 1) * s.sequence), Number);
    examples.push({ ids, lossMask: ids.map((_, t) => (t === 0 ? 0 : 1)) });
  }
  // MatMul rate before and after the steps, the better kept: the machine is shared.
  const matmulBefore = await matmulGflops(s.threads, 1);
  const weights = initWeights(s.model, 11);
  // Loss before any update, without dropout: compared with tfjs's and PyTorch's on the same weights.
  const probe = await OrtTrainSession.create(s.model, { threads: s.threads });
  const initialLoss = (await probe.run(weights, makeBatchArrays(examples))).loss;
  await probe.release();

  const engine = createOrtEngine(s.model, weights, s, s.threads, { spinning: s.spinning });
  let stepIndex = 0;
  const step = async (): Promise<{ loss: number; tokens: number }> => engine.step(examples, s.lr, s.dropout ?? undefined, 1000 + stepIndex++);
  for (let i = 0; i < s.warmup; i++) await step();
  let tokens = 0;
  let lastLoss = NaN;
  const faultsBefore = process.resourceUsage().minorPageFault;
  const start = performance.now();
  for (let i = 0; i < s.steps; i++) {
    const r = await step();
    tokens += r.tokens;
    lastLoss = r.loss;
  }
  const seconds = (performance.now() - start) / 1000;
  const faultsPerStep = (process.resourceUsage().minorPageFault - faultsBefore) / s.steps;
  await engine.dispose();

  let profile: Array<{ op: string; ms: number; calls: number }> | null = null;
  if (s.profileDir) {
    // Two runs, the first a warm-up; only the last run's kernels are summed.
    const session = await OrtTrainSession.create(s.model, { threads: s.threads, dropoutLayers: s.dropout?.map((r) => r > 0), profilePrefix: path.join(s.profileDir, 'ort-train') });
    const batch = makeBatchArrays(examples);
    const masks = dropoutMasks(s.dropout ?? new Array<number>(s.model.layers).fill(0), batch.batch * batch.length, s.model.dModel, 1);
    await session.run(weights, batch, masks);
    await session.run(weights, batch, masks);
    session.endProfiling();
    const name = (await fs.readdir(s.profileDir)).filter((f) => f.startsWith('ort-train_') && f.endsWith('.json')).sort().pop();
    if (!name) throw new Error(`no onnxruntime profile in ${s.profileDir}`);
    profile = await profileByOp(path.join(s.profileDir, name), process.env.LIMA_PROFILE_BY_NODE === '1');
    await session.release();
  }
  const matmul = Math.max(matmulBefore, await matmulGflops(s.threads, 1));
  console.log(
    JSON.stringify({
      ort: ort.env.versions?.common ?? 'unknown',
      threads: s.threads,
      tokensPerSec: tokens / seconds,
      stepMs: (1000 * seconds) / s.steps,
      peakRssMB: peakRssMB(),
      initialLoss,
      lastLoss,
      matmulGflops: matmul,
      minorPageFaultsPerStep: faultsPerStep,
      profile,
    }),
  );
}

await main();
