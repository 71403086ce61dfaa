// Evaluation on the BullMQ queue vs the local piscina pool: `npm run bench -- queue [--quick]`.
// The same perplexity scoring tasks (batches of 8 x 256 tokens on a ~1.1M-parameter model, as in
// bench/eval.ts) run through the pool with 1 and 2 workers and through the queue with 1 and 2
// worker processes (1 thread each) on a local redis-server; then tiny tasks (1 x 8 tokens) give
// the queue's overhead per task. Last stdout line: one JSON object.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Piscina } from 'piscina';
import type { ModelConfig } from '../src/model/config.ts';
import { exportOnnx } from '../src/model/onnx-export.ts';
import type { NamedWeights } from '../src/model/weights.ts';
import { runQueued, type QueuedTask } from '../src/eval/queue.ts';
import type { PerplexityTask } from '../src/eval/tasks.ts';
import { createProgress } from '../src/util/progress.ts';
import { sha256File } from '../src/util/hash.ts';
import { mulberry32 } from '../src/util/rng.ts';
import { randomWeights as randomWeightsOf } from './common.ts';
import { redisMissing, startRedis, startWorker } from '../tests/eval/redis-fixture.ts';

const quick = process.argv.includes('--quick');
const model: ModelConfig = { vocab: 2048, context: 256, dModel: 128, layers: 4, heads: 4 };
const log = (msg: string): void => console.log(msg);

const randomWeights = (seed: number): NamedWeights => randomWeightsOf(model, seed, 0.05);

function scoringTask(onnxPath: string, batch: number, seq: number, seed: number): PerplexityTask {
  const rng = mulberry32(seed);
  const examples = Array.from({ length: batch }, (_, i) => {
    const ids = Array.from({ length: seq }, () => Math.floor(rng() * model.vocab));
    return { id: `b${i}`, ids, lossMask: ids.map((_, t) => (t === 0 ? 0 : 1)), bytes: seq };
  });
  return { kind: 'perplexity', onnxPath, model, threads: 1, examples };
}

async function viaPool(tasks: PerplexityTask[], workers: number): Promise<number> {
  const pool = new Piscina({ filename: new URL('../src/eval/worker.mjs', import.meta.url).href, minThreads: workers, maxThreads: workers });
  await Promise.all(Array.from({ length: workers * 2 }, () => pool.run(tasks[0]!))); // load tsx, onnxruntime, the session
  const start = performance.now();
  await Promise.all(tasks.map((t) => pool.run(t)));
  const seconds = (performance.now() - start) / 1000;
  await pool.destroy();
  return seconds;
}

async function viaQueue(url: string, tasks: PerplexityTask[], sha: string, tag: string): Promise<number> {
  const queued = (list: PerplexityTask[], prefix: string): QueuedTask[] =>
    list.map((task, i) => ({ key: `${prefix}-${i}`, shard: `${prefix}-${i}`, label: `bench task ${i}`, modelSha256: sha, task, units: 1, onResult: async () => 1 }));
  const quiet = { progress: createProgress('', 0, { quiet: true }), quiet: true, onStored: () => undefined };
  await runQueued(queued(tasks.slice(0, 4), `${tag}-warm-${Date.now()}`), { url, tickMs: 500 }, quiet); // workers load the session
  const start = performance.now();
  await runQueued(queued(tasks, `${tag}-${Date.now()}`), { url, tickMs: 500 }, quiet);
  return (performance.now() - start) / 1000;
}

async function main(): Promise<void> {
  const missing = redisMissing();
  if (missing) {
    console.error(`bench queue: ${missing}`);
    process.exit(1);
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-bench-queue-'));
  const redis = await startRedis();
  const procs: Array<Awaited<ReturnType<typeof startWorker>>> = [];
  try {
    const onnxPath = path.join(dir, 'model.onnx');
    await exportOnnx(model, randomWeights(7), onnxPath);
    const sha = await sha256File(onnxPath);
    const count = quick ? 24 : 64;
    const big = Array.from({ length: count }, (_, i) => scoringTask(onnxPath, 8, 256, i));
    const tokens = count * 8 * 255;
    const tiny = Array.from({ length: quick ? 100 : 300 }, (_, i) => scoringTask(onnxPath, 1, 8, i));
    log(`model ${JSON.stringify(model)}; ${count} scoring tasks of 8 x 256 tokens; ${os.availableParallelism()} cores shared with other work (figures are noisy)`);

    const pool1 = await viaPool(big, 1);
    const pool2 = await viaPool(big, 2);
    const tinyPool = await viaPool(tiny, 1);
    procs.push(await startWorker(redis.url, { args: ['--lock-ms', '30000'] }));
    const queue1 = await viaQueue(redis.url, big, sha, 'q1');
    const tinyQueue = await viaQueue(redis.url, tiny, sha, 'tiny');
    procs.push(await startWorker(redis.url, { args: ['--lock-ms', '30000'] }));
    const queue2 = await viaQueue(redis.url, big, sha, 'q2');
    const rate = (s: number) => tokens / s;
    const overheadMs = ((tinyQueue - tinyPool) / tiny.length) * 1000;
    log(`pool:  1 worker ${rate(pool1).toFixed(0)} tokens/s, 2 workers ${rate(pool2).toFixed(0)} tokens/s, scaling ${(pool1 / pool2).toFixed(2)}x`);
    log(`queue: 1 worker process ${rate(queue1).toFixed(0)} tokens/s, 2 processes ${rate(queue2).toFixed(0)} tokens/s, scaling ${(queue1 / queue2).toFixed(2)}x; vs pool ${(pool1 / queue1).toFixed(2)}x (1), ${(pool2 / queue2).toFixed(2)}x (2)`);
    log(`queue overhead per task (1 job = 1 task of 1 x 8 tokens, 1 worker): ${overheadMs.toFixed(2)} ms (${((tinyQueue / tiny.length) * 1000).toFixed(2)} ms per task on the queue, ${((tinyPool / tiny.length) * 1000).toFixed(2)} on the pool)`);
    console.log(
      JSON.stringify({
        bench: 'queue',
        quick,
        tasks: count,
        poolTokensPerSec: Math.round(rate(pool1)),
        poolTokensPerSec2Workers: Math.round(rate(pool2)),
        queueTokensPerSec: Math.round(rate(queue1)),
        queueTokensPerSec2Workers: Math.round(rate(queue2)),
        poolScaling2Workers: +(pool1 / pool2).toFixed(3),
        queueScaling2Workers: +(queue1 / queue2).toFixed(3),
        queueOverheadMsPerTask: +overheadMs.toFixed(3),
      }),
    );
  } finally {
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    await redis.kill();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
