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

test('a task that always fails fails the study after its attempts, naming checkpoint and example; a rerun completes', { skip }, async () => {
  workers.push(await startWorker(redis.url));
  const target = fixture.dev[3]!.id;
  const outDir = path.join(root, 'fail');
  await assert.rejects(runEvaluation(queued({ outDir, faultInjection: { exampleId: target, failAttempts: 99 } })), (err: Error) => {
    assert.match(err.message, /failed after 2 attempt\(s\) on the queue/);
    assert.match(err.message, /checkpoint epoch \d+ \([0-9a-f]{12}\)/);
    assert.match(err.message, new RegExp(`dev example ${target} sample \\d`));
    assert.match(err.message, /injected failure/);
    return true;
  });
  // Nothing stored is lost; the rerun (cause fixed) computes only the rest and matches the pool.
  const before = await stored(outDir);
  const rerun = await runEvaluation(queued({ outDir }));
  assert.equal(rerun.computed.perplexity + rerun.computed.generations, totalWindows + totalGenerations - before);
  assert.deepEqual(rerun.generations, reference.generations);
  assert.deepEqual(rerun.perCheckpoint, reference.perCheckpoint);
  await stopWorkers();
});

test('Redis killed and restarted empty while the study waits: jobs are enqueued again and the study finishes', { skip }, async () => {
  const outDir = path.join(root, 'restart');
  // 150 ms per job keeps the study running long enough to lose Redis in the middle.
  workers.push(await startWorker(redis.url, { env: { LIMA_WORKER_TEST_DELAY_MS: '150' } }));
  const running = runEvaluation(queued({ outDir }));
  while ((await stored(outDir)) < 10) await new Promise((r) => setTimeout(r, 20));
  await redis.kill();
  await new Promise((r) => setTimeout(r, 1000));
  await redis.start();
  const result = await running;
  assert.ok(result.queue!.jobsLost > 0, `jobs lost: ${JSON.stringify(result.queue)}`);
  assert.deepEqual(result.perplexity, reference.perplexity);
  assert.deepEqual(result.generations, reference.generations);
  await workers[0]!.waitFor(/connected again/, 1000);
  await stopWorkers();
});

test('Redis gone for good: the study stops with a clear error within its bound, keeping what it stored', { skip }, async () => {
  const outDir = path.join(root, 'gone');
  workers.push(await startWorker(redis.url, { env: { LIMA_WORKER_TEST_DELAY_MS: '150' } }));
  const started = Date.now();
  const running = runEvaluation(queued({ outDir, queue: { url: redis.url, tasksPerJob: 4, ...fast, unreachableMs: 2000 } }));
  while ((await stored(outDir)) < 10) await new Promise((r) => setTimeout(r, 20));
  await redis.kill();
  await assert.rejects(running, /Redis at redis:\/\/127\.0\.0\.1:\d+ unreachable for \d+ s with \d+ jobs left; the results stored so far are kept/);
  assert.ok(Date.now() - started < 30_000);
  await stopWorkers();
  await redis.start();
  const kept = await stored(outDir);
  assert.ok(kept >= 10);
  workers.push(await startWorker(redis.url));
  const rerun = await runEvaluation(queued({ outDir }));
  assert.equal(rerun.computed.perplexity + rerun.computed.generations, totalWindows + totalGenerations - kept);
  assert.deepEqual(rerun.perplexity, reference.perplexity);
  await stopWorkers();
});

test('the study killed with SIGKILL and rerun: resumes from the stores without enqueueing finished work', { skip }, async () => {
  const outDir = path.join(root, 'killed-study');
  workers.push(await startWorker(redis.url, { env: { LIMA_WORKER_TEST_DELAY_MS: '100' } }));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'eval-child.ts'), outDir, runDir, redis.url], { stdio: 'ignore' });
  const exit = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  while ((await stored(outDir)) < 10 && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  assert.equal(child.exitCode, null, 'the study finished before it could be killed');
  child.kill('SIGKILL');
  await exit;
  const genDone = (await lines(path.join(outDir, 'generations.jsonl'))).length;
  const pplDone = (await lines(path.join(outDir, 'perplexity.jsonl'))).length;
  const resumed = await runEvaluation(queued({ outDir }));
  // Only the missing results were computed and stored...
  assert.deepEqual(resumed.computed, { perplexity: totalWindows - pplDone, generations: totalGenerations - genDone });
  assert.deepEqual(resumed.perplexity, reference.perplexity);
  assert.deepEqual(resumed.generations, reference.generations);
  // ...and the generation tasks enqueued are exactly the missing ones (one task per sample).
  assert.equal(resumed.queue!.tasksByKind.generation, totalGenerations - genDone);
  assert.ok(resumed.queue!.tasksByKind.perplexity < reference.heldoutCoverage.windows * fixture.checkpoints.length);
  assert.equal((await lines(path.join(outDir, 'generations.jsonl'))).length, totalGenerations, 'no duplicate lines');
  await stopWorkers();
});

test('a worker reads model files through --path-map and refuses a file whose content hash differs', { skip }, async () => {
  const outDir = path.join(root, 'mapped');
  const mirror = path.join(root, 'mirror');
  // The "other machine's mount": copies of the exported files, one of them stale.
  await fs.mkdir(mirror, { recursive: true });
  for (const f of await fs.readdir(path.join(root, 'local', 'onnx'))) await fs.copyFile(path.join(root, 'local', 'onnx', f), path.join(mirror, f));
  const good = await fs.readFile(path.join(mirror, '2.onnx'));
  await fs.writeFile(path.join(mirror, '2.onnx'), Buffer.concat([good, Buffer.from([0])]));
  workers.push(await startWorker(redis.url, { args: ['--path-map', `${path.join(outDir, 'onnx')}=${mirror}`] }));
  await assert.rejects(runEvaluation(queued({ outDir })), (err: Error) => {
    assert.match(err.message, /checkpoint epoch 2 /);
    assert.match(err.message, /model file .*mirror\/2\.onnx \(mapped from .*mapped\/onnx\/2\.onnx\) on worker \S+ has content sha256 [0-9a-f]{16}\.\.\., the task needs [0-9a-f]{16}\.\.\..*task refused/);
    return true;
  });
  await fs.writeFile(path.join(mirror, '2.onnx'), good);
  const result = await runEvaluation(queued({ outDir }));
  assert.deepEqual(result.perplexity, reference.perplexity);
  assert.deepEqual(result.generations, reference.generations);
  await stopWorkers();
});
