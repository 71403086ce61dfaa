// A whole tiny study evaluated on the queue (a password-protected redis-server and one worker
// process): the password appears in no log, report, metrics or run file, and the same run
// directory then resumes on the local pool (the queue is not part of the run's identity) to
// the same metrics.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { redisMissing, startRedis, startWorker, type RedisHandle, type WorkerHandle } from '../eval/redis-fixture.ts';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'bin/lima-harness.mjs');
const skip = redisMissing();

const tinyConfig = {
  name: 'tiny-queue',
  seed: 5,
  data: { builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: 32, heldout: 24, dev: 3 }, pretrainTexts: 32 },
  tokenizer: { vocabSize: 280 },
  model: { context: 32, dModel: 16, layers: 1, heads: 2 },
  train: { epochs: 2, batchSize: 16, lrScale: 300, maxLength: 32, backend: 'wasm', base: { kind: 'pretrain', epochs: 1, batchSize: 16, lr: 3e-3, maxLength: 32 } },
  eval: { workers: 1, maxLength: 32, batchTokens: 128, generation: { samples: 2, maxNewTokens: 8 }, queueTasksPerJob: 3 },
  judge: { kind: 'rubric' },
  analysis: { window: [1, 2], bootstrap: 20 },
};

let redis: RedisHandle | undefined;
let worker: WorkerHandle | undefined;
after(async () => {
  await worker?.kill('SIGKILL');
  await redis?.kill();
});

function run(args: string[], cwd: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd, env: { ...process.env, LIMA_QUIET: '0', LIMA_QUEUE_PASSWORD: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  return out;
}

test('a study on a password-protected queue: the password is nowhere, and the run resumes on the local pool', { skip }, async () => {
  const password = `pw-${randomBytes(12).toString('hex')}`;
  redis = await startRedis({ password });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-queue-e2e-'));
  await fs.writeFile(path.join(dir, 'tiny.json'), JSON.stringify(tinyConfig));
  // The worker takes the password from the environment, the study from the URL.
  worker = await startWorker(`redis://127.0.0.1:${redis.port}`, { env: { LIMA_QUEUE_PASSWORD: password } });
  const queued = await run(['experiment', '--config', 'tiny.json', '--run-dir', 'run', '--out', 'report', '--queue', redis.url], dir);
  assert.equal(queued.status, 0, queued.stderr);
  assert.match(queued.stderr, /on the queue at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+/);
  assert.match(worker.output(), /job \S+ done/, 'the worker did the evaluation');
  const logs = queued.stdout + queued.stderr + worker.output();
  assert.ok(!logs.includes(password), 'password in a log');
  for (const file of [...(await filesUnder(path.join(dir, 'run'))), ...(await filesUnder(path.join(dir, 'report')))]) {
    const bytes = await fs.readFile(file);
    assert.ok(!bytes.includes(password), `password in ${file}`);
  }
  const metricsQueued = JSON.parse(await fs.readFile(path.join(dir, 'report', 'metrics.json'), 'utf8'));

  // Same run directory on the local pool: accepted (same identity), nothing left to evaluate,
  // the same metrics.
  const evalLines = async () => (await fs.readFile(path.join(dir, 'run', 'eval', 'generations.jsonl'), 'utf8')).length;
  const before = await evalLines();
  const local = await run(['experiment', '--config', 'tiny.json', '--run-dir', 'run', '--out', 'report-local'], dir);
  assert.equal(local.status, 0, local.stderr);
  assert.equal(await evalLines(), before, 'the local rerun evaluated nothing again');
  const metricsLocal = JSON.parse(await fs.readFile(path.join(dir, 'report-local', 'metrics.json'), 'utf8'));
  const { durationsSeconds: _a, backend: _b, ...q } = metricsQueued;
  const { durationsSeconds: _c, backend: _d, ...l } = metricsLocal;
  assert.deepEqual(l, q);
  await fs.rm(dir, { recursive: true, force: true });
});
