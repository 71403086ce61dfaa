// A long-running evaluation worker on a BullMQ queue (`lima-harness worker --queue URL`). It runs
// each job's pool tasks with the same task code as the local pool (src/eval/worker.ts) on a local
// piscina pool, so the process's event loop stays free to renew the job's lock while the model
// runs. Before a task runs, the model file it names (mapped by --path-map) must hash to the
// content hash the task carries; a different file is refused with an error saying which.
import { promises as fs } from 'node:fs';
import { Piscina } from 'piscina';
import { Worker, type Job } from 'bullmq';
import { sha256File } from '../util/hash.ts';
import { DEFAULT_QUEUE_NAME, QUEUE_PROTOCOL_VERSION, queueConnection, scrub, workerName, type QueueJobData, type QueueJobResult } from './queue.ts';
import type { EvalTaskResult } from './tasks.ts';

export interface QueueWorkerOptions {
  url: string;
  name?: string;
  /** Pool threads in this process, and jobs taken at once. */
  workers: number;
  /** onnxruntime intra-op threads per pool thread. */
  threads: number;
  /** [from, to] prefixes: a task's path starting with `from` is read at `to` + the rest. */
  pathMap?: Array<[string, string]>;
  /** BullMQ lock duration in ms: a job whose worker died is handed on after about this long. */
  lockMs?: number;
  /** Per-job lines on the log. */
  verbose?: boolean;
  log?: (line: string) => void;
}

export interface QueueWorkerHandle {
  /** Stops taking jobs, lets running ones finish, closes the pool and the connections. */
  close(): Promise<void>;
  readonly display: string;
}

/** Applies the first matching prefix mapping. */
export function mapPath(file: string, pathMap: Array<[string, string]> = []): string {
  for (const [from, to] of pathMap) if (file === from || file.startsWith(from.endsWith('/') ? from : from + '/')) return to + file.slice(from.length);
  return file;
}

/** Parses --path-map FROM=TO. */
export function parsePathMap(specs: string[]): Array<[string, string]> {
  return specs.map((spec) => {
    const at = spec.indexOf('=');
    if (at <= 0 || at === spec.length - 1) throw new Error(`--path-map ${JSON.stringify(spec)}: expected FROM=TO (two path prefixes)`);
    return [spec.slice(0, at).replace(/\/+$/, ''), spec.slice(at + 1).replace(/\/+$/, '')];
  });
}

/** sha256 of model files, recomputed when a file's size or mtime changes. */
class ModelHashes {
  private readonly cache = new Map<string, { stamp: string; sha: Promise<string> }>();

  async verify(file: string, expected: string, original: string): Promise<void> {
    let stat;
    try {
      stat = await fs.stat(file);
    } catch (err) {
      const where = file === original ? file : `${file} (mapped from ${original})`;
      throw new Error(`model file ${where} cannot be read on worker ${workerName()} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): workers need the study's run directory on shared storage, at the same path or mapped with --path-map FROM=TO`);
    }
    const stamp = `${stat.size}:${stat.mtimeMs}`;
    let entry = this.cache.get(file);
    if (!entry || entry.stamp !== stamp) this.cache.set(file, (entry = { stamp, sha: sha256File(file) }));
    const actual = await entry.sha;
    if (actual !== expected) {
      const where = file === original ? file : `${file} (mapped from ${original})`;
      throw new Error(
        `model file ${where} on worker ${workerName()} has content sha256 ${actual.slice(0, 16)}..., the task needs ${expected.slice(0, 16)}...: ` +
          'this machine sees a different file at that path (a stale copy, a re-export, or a wrong --path-map); task refused',
      );
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startQueueWorker(opts: QueueWorkerOptions): Promise<QueueWorkerHandle> {
  const conn = queueConnection(opts.url);
  const log = (line: string): void => (opts.log ?? ((l: string) => process.stderr.write(l + '\n')))(scrub(`[worker ${workerName()}] ${line}`, conn.secret));
  const hashes = new ModelHashes();
  const pool = new Piscina({ filename: new URL('./worker.mjs', import.meta.url).href, minThreads: opts.workers, maxThreads: opts.workers, concurrentTasksPerWorker: 1, idleTimeout: 60_000 });
  // Test hook: hold every job this long before working on it (to kill a worker mid-job).
  const testDelayMs = Number(process.env.LIMA_WORKER_TEST_DELAY_MS ?? 0);
  let done = 0;
  let failed = 0;

  const processor = async (job: Job<QueueJobData, QueueJobResult>): Promise<QueueJobResult> => {
    const data = job.data;
    if (data?.version !== QUEUE_PROTOCOL_VERSION || !Array.isArray(data.tasks)) {
      throw new Error(`job ${job.id}: queue protocol version ${data?.version} but this worker speaks ${QUEUE_PROTOCOL_VERSION}; run the same lima-harness version on the study and its workers`);
    }
    if (opts.verbose) log(`job ${job.id} started: ${data.tasks.length} task(s), attempt ${job.attemptsMade + 1}`);
    if (testDelayMs > 0) await sleep(testDelayMs);
    const results = await Promise.all(
      data.tasks.map(async (t): Promise<{ key: string; result: EvalTaskResult }> => {
        try {
          const file = mapPath(t.task.onnxPath, opts.pathMap);
          await hashes.verify(file, t.modelSha256, t.task.onnxPath);
          if (t.injectFailureAttempts !== undefined && job.attemptsMade < t.injectFailureAttempts) throw new Error('injected failure (test hook)');
          const result = (await pool.run({ ...t.task, onnxPath: file, threads: opts.threads, modelSha256: t.modelSha256 })) as EvalTaskResult;
          return { key: t.key, result };
        } catch (err) {
          throw new Error(`${t.label}: ${(err as Error)?.message ?? String(err)} (worker ${workerName()})`);
        }
      }),
    );
    return { worker: workerName(), results };
  };

  const worker = new Worker<QueueJobData, QueueJobResult>(opts.name ?? DEFAULT_QUEUE_NAME, processor, {
    connection: { ...conn.options, maxRetriesPerRequest: null },
    concurrency: opts.workers,
    lockDuration: opts.lockMs ?? 30_000,
    stalledInterval: opts.lockMs ?? 30_000,
    // A job may outlive two dead workers before it counts as failed.
    maxStalledCount: 2,
    name: workerName(),
  });
  let lastError = '';
  worker.on('error', (err) => {
    const message = err?.message ?? String(err);
    if (message !== lastError) log(`redis: ${message}`); // reconnecting is logged once, not every retry
    lastError = message;
  });
  worker.on('ready', () => {
    if (lastError) log('connected again');
    lastError = '';
  });
  worker.on('completed', (job) => {
    done++;
    if (opts.verbose) log(`job ${job.id} done`);
  });
  worker.on('failed', (job, err) => {
    failed++;
    log(`job ${job?.id ?? '?'} failed (attempt ${job?.attemptsMade ?? '?'}): ${err.message}`);
  });
  await worker.waitUntilReady();
  log(`serving queue ${opts.name ?? DEFAULT_QUEUE_NAME} at ${conn.display}: ${opts.workers} pool worker(s) x ${opts.threads} thread(s)`);
  const summary = setInterval(() => {
    if (done + failed > 0) log(`${done} job(s) done, ${failed} failed so far`);
  }, 60_000);
  summary.unref();

  return {
    display: conn.display,
    async close() {
      clearInterval(summary);
      await worker.close();
      await pool.destroy();
    },
  };
}
