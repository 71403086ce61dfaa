// Evaluation on a BullMQ queue against a real redis-server (issue 15): the same results as the
// local pool, a worker killed with SIGKILL mid-job, a task that always fails, Redis restarted
// without persistence while the study waits, and the study itself killed and rerun.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runEvaluation, type EvaluationOptions, type EvaluationResult } from '../../src/eval/index.ts';
import { evalFixture } from './pool-fixture.ts';
import { tempDir } from './helpers.ts';
import { redisMissing, startRedis, startWorker, type RedisHandle, type WorkerHandle } from './redis-fixture.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const skip = redisMissing();
const root = await tempDir('queue');
const runDir = path.join(root, 'run');
const fixture = await evalFixture(runDir);
const totalGenerations = fixture.checkpoints.length * fixture.dev.length * fixture.config.generation.samples;

let reference: EvaluationResult;
let totalWindows = 0;
let redis: RedisHandle;
const workers: WorkerHandle[] = [];
// Short bounds so faults show up in seconds; the defaults are minutes.
const fast = { tickMs: 200, sweepMs: 1000, unreachableMs: 8000, noWorkerMs: 20_000 };
const queued = (extra: Partial<EvaluationOptions> = {}): EvaluationOptions => ({ ...fixture, quiet: true, outDir: '', queue: { url: redis.url, tasksPerJob: 4, ...fast }, ...extra });

async function lines(file: string): Promise<string[]> {
  try {
    return (await fs.readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

async function stored(outDir: string): Promise<number> {
  return (await lines(path.join(outDir, 'perplexity.jsonl'))).length + (await lines(path.join(outDir, 'generations.jsonl'))).length;
}

async function stopWorkers(): Promise<void> {
  await Promise.all(workers.splice(0).map((w) => w.kill('SIGKILL')));
}

before(async () => {
  if (skip) return;
  reference = await runEvaluation({ ...fixture, outDir: path.join(root, 'local'), quiet: true });
  totalWindows = reference.heldoutCoverage.windows * fixture.checkpoints.length;
  redis = await startRedis();
});

after(async () => {
  await stopWorkers();
  await redis?.kill();
  await fs.rm(root, { recursive: true, force: true });
});

test('two workers, one killed with SIGKILL mid-job: its job is picked up again and the results equal the local pool', { skip }, async () => {
  // The first worker holds every job it takes for a minute, so it is surely mid-job when killed.
  const slow = await startWorker(redis.url, { env: { LIMA_WORKER_TEST_DELAY_MS: '60000' } });
  workers.push(slow);
  const outDir = path.join(root, 'sigkill');
  const running = runEvaluation(queued({ outDir }));
  const [, jobId] = (await slow.waitFor(/job (\S+) started/))!;
  const fastWorker = await startWorker(redis.url);
  workers.push(fastWorker);
  await slow.kill('SIGKILL');
  const result = await running;
  assert.deepEqual(result.perplexity, reference.perplexity);
  assert.deepEqual(result.generations, reference.generations);
  assert.deepEqual(result.perCheckpoint, reference.perCheckpoint);
  assert.deepEqual(result.computed, { perplexity: totalWindows, generations: totalGenerations });
  // The killed worker's job was done by the other one, after BullMQ found it stalled.
  assert.match(fastWorker.output(), new RegExp(`job ${jobId} done`));
  assert.ok(result.queue && result.queue.jobsAdded > 1, JSON.stringify(result.queue));
  await stopWorkers();
});
