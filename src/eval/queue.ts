// Evaluation over a BullMQ queue on Redis (issue 15): the study enqueues its pool tasks, grouped
// into jobs of one checkpoint, and long-running workers on any machine run them with the same
// task code as the local pool (src/eval/queue-worker.ts). Results come back as the jobs' return
// values and land in the same per-example stores, so a duplicate is harmless and a rerun resumes.
//
// What keeps a study from losing work or hanging:
// - job ids are deterministic (checkpoint, settings, shard of tasks): a rerun finds the jobs a
//   killed study left in Redis, waiting, running or finished, instead of enqueueing them again;
// - BullMQ's stalled-job check hands a job whose worker died (lock expired) to another worker;
// - a periodic sweep reconciles every outstanding job with Redis: a job Redis lost (restarted
//   without persistence) is enqueued again, a finished one whose event was missed is collected;
// - waiting is bounded: Redis unreachable for `unreachableMs`, or no worker connected for
//   `noWorkerMs`, stops the study with an error; meanwhile a status line is printed regularly.
import os from 'node:os';
import { Job, Queue, QueueEvents } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { stableHash } from '../util/hash.ts';
import type { Progress } from '../util/progress.ts';
import type { EvalTask, EvalTaskResult } from './tasks.ts';

/** The queue the study and its workers share unless told otherwise. */
export const DEFAULT_QUEUE_NAME = 'lima-eval';
/** Bumped when the job data or result shape changes; a worker refuses jobs of another version. */
export const QUEUE_PROTOCOL_VERSION = 1;
/** Attempts per job (the local pool also tries every task twice). */
export const QUEUE_ATTEMPTS = 2;
const KEEP_SECONDS = 7 * 24 * 3600;

/** One pool task as a queue job carries it. `task.threads` is decided by the worker. */
export interface QueueJobTask {
  /** Identity of the task within its study (checkpoint, settings, windows or sample). */
  key: string;
  /** Names the checkpoint and the examples, for errors. */
  label: string;
  /** sha256 of the ONNX file's bytes: a worker that finds another file at the path refuses. */
  modelSha256: string;
  task: EvalTask;
  /** Test hook: the worker throws on attempts before this one (0-based attempts made). */
  injectFailureAttempts?: number;
}

export interface QueueJobData {
  version: number;
  tasks: QueueJobTask[];
}

export interface QueueJobResult {
  /** host:pid of the worker process. */
  worker: string;
  results: Array<{ key: string; result: EvalTaskResult }>;
}

/** A task of the study, with what to do with its result. */
export interface QueuedTask extends Omit<QueueJobTask, 'task'> {
  task: EvalTask;
  /** Tasks with the same shard go in one job; the shard's identity names the job. */
  shard: string;
  /** Progress units (windows scored or generations). */
  units: number;
  /** Stores the result; returns how many results were new. */
  onResult: (result: EvalTaskResult) => Promise<number>;
}

export interface QueueOptions {
  /** redis://[USER][:PASSWORD@]HOST[:PORT][/DB] or rediss://... (TLS). */
  url: string;
  name?: string;
  /** Milliseconds between checks of Redis (ping, restart detection). Default 1000. */
  tickMs?: number;
  /** Milliseconds between full reconciliations of every outstanding job. Default 30000. */
  sweepMs?: number;
  /** Stop with an error when Redis has been unreachable this long. Default 120000 ms. */
  unreachableMs?: number;
  /** Stop with an error when no worker has been connected this long. Default 600000 ms. */
  noWorkerMs?: number;
  /** A status line on stderr when nothing finished for this long. Default 30000 ms. */
  statusMs?: number;
}

export interface QueueStats {
  /** Jobs this run added to Redis (counting re-adds after Redis lost them). */
  jobsAdded: number;
  /** Pool tasks carried by the jobs this run added. */
  tasksAdded: number;
  /** Jobs found in Redis from an earlier run (waiting, running or finished) and used. */
  jobsReused: number;
  /** Jobs enqueued again because Redis no longer had them. */
  jobsLost: number;
  /** Pool tasks this run needed (those without a stored result), by kind. */
  tasksByKind: { perplexity: number; generation: number };
}

export interface QueueConnection {
  options: RedisOptions;
  /** The URL with its password replaced by ***: the only form that may be printed. */
  display: string;
  /** The password, to scrub from any message before it is printed. */
  secret?: string;
}

/**
 * Connection options from a redis:// or rediss:// URL. A password absent from the URL is taken
 * from the environment variable LIMA_QUEUE_PASSWORD (keeps it off command lines and configs).
 */
export function queueConnection(url: string, env: NodeJS.ProcessEnv = process.env): QueueConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error('queue: not a valid URL (expected redis://[:PASSWORD@]HOST:PORT or rediss://...)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`queue: expected a redis:// or rediss:// URL, got the scheme ${JSON.stringify(u.protocol)}`);
  const password = decodeURIComponent(u.password) || env.LIMA_QUEUE_PASSWORD || undefined;
  const username = decodeURIComponent(u.username) || undefined;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  if (db !== undefined && !Number.isInteger(db)) throw new Error('queue: the URL path must be a database number (redis://HOST:PORT/0)');
  const options: RedisOptions = { host, port: u.port ? Number(u.port) : 6379, username, password, db, ...(u.protocol === 'rediss:' ? { tls: { servername: host } } : {}) };
  const auth = password ? `${username ?? ''}:***@` : username ? `${username}@` : '';
  const display = `${u.protocol}//${auth}${u.host}${db !== undefined ? `/${db}` : ''}`;
  return { options, display, secret: password };
}

/** `text` with every occurrence of the secret (raw or URL-encoded) replaced by ***. */
export function scrub(text: string, secret: string | undefined): string {
  if (!secret) return text;
  return text.split(secret).join('***').split(encodeURIComponent(secret)).join('***');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface TrackedJob {
  id: string;
  tasks: QueuedTask[];
  done: Set<string>;
  finished: boolean;
  /** Added (or found waiting/running) by this run: a final failure now fails the study. */
  live: boolean;
  busy?: Promise<void>;
  again?: boolean;
}

/**
 * Runs `tasks` through the queue: enqueues them grouped by shard, collects every result through
 * `onResult` and ticks `progress`. Resolves when every task has a stored result; rejects, naming
 * the checkpoint and examples, when a job failed all its attempts, and on the waiting bounds.
 */
export async function runQueued(tasks: QueuedTask[], options: QueueOptions, hooks: { progress: Progress; quiet?: boolean; onStored: (task: QueuedTask, added: number) => void }): Promise<QueueStats> {
  const conn = queueConnection(options.url);
  const name = options.name ?? DEFAULT_QUEUE_NAME;
  const tickMs = options.tickMs ?? 1000;
  const sweepMs = options.sweepMs ?? 30_000;
  const unreachableMs = options.unreachableMs ?? 120_000;
  const noWorkerMs = options.noWorkerMs ?? 600_000;
  const statusMs = options.statusMs ?? 30_000;
  const say = (message: string): void => {
    if (!hooks.quiet) process.stderr.write(`\n[eval queue] ${scrub(message, conn.secret)}\n`);
  };
  const stats: QueueStats = { jobsAdded: 0, tasksAdded: 0, jobsReused: 0, jobsLost: 0, tasksByKind: { perplexity: 0, generation: 0 } };
  for (const t of tasks) stats.tasksByKind[t.task.kind]++;

  const jobs = new Map<string, TrackedJob>();
  for (const t of tasks) {
    const id = `e${stableHash({ shard: t.shard, inject: t.injectFailureAttempts ?? 0 }).slice(0, 40)}`;
    let job = jobs.get(id);
    if (!job) jobs.set(id, (job = { id, tasks: [], done: new Set(), finished: false, live: false }));
    job.tasks.push(t);
  }
  // Biggest jobs first, as the local pool orders its tasks.
  const order = [...jobs.values()].sort((a, b) => b.tasks.reduce((n, t) => n + t.units, 0) - a.tasks.reduce((n, t) => n + t.units, 0));

  let lastError = '';
  const noteError = (err: Error): void => {
    lastError = scrub(err?.message ?? String(err), conn.secret);
  };
  // Commands fail at once while Redis is down (no offline queue), so the study notices and
  // counts the time instead of piling commands up; the events connection blocks and must retry.
  // Reconnect every 500 ms until the study ends; then stop, so closing never waits on a Redis that
  // is gone (BullMQ's close() waits for the connection to be ready).
  let closing = false;
  const retryStrategy = (): number | null => (closing ? null : 500);
  const queue = new Queue<QueueJobData, QueueJobResult>(name, { connection: { ...conn.options, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy } });
  queue.on('error', noteError);
  let events: QueueEvents | undefined;

  // BullMQ waits for the connection to come back before some commands; bound every round trip
  // so a Redis that went away is counted as unreachable instead of hanging the study.
  const commandMs = Math.min(10_000, Math.max(500, unreachableMs / 2));
  const bounded = <T>(work: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${commandMs} ms`)), commandMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };

  let failure: Error | undefined;
  let lastProgress = Date.now();
  let remaining = order.length;
  let wake: (() => void) | undefined;
  const poke = (): void => wake?.();

  const add = async (job: TrackedJob): Promise<void> => {
    const data: QueueJobData = {
      version: QUEUE_PROTOCOL_VERSION,
      tasks: job.tasks.filter((t) => !job.done.has(t.key)).map(({ key, label, modelSha256, task, injectFailureAttempts }) => ({ key, label, modelSha256, task: { ...task, threads: 0 }, injectFailureAttempts })),
    };
    await bounded(queue.add('eval', data, { jobId: job.id, attempts: QUEUE_ATTEMPTS, removeOnComplete: { age: KEEP_SECONDS }, removeOnFail: { age: KEEP_SECONDS } }));
    job.live = true;
    stats.jobsAdded++;
    stats.tasksAdded += data.tasks.length;
  };

  const consume = async (job: TrackedJob, found: Job<QueueJobData, QueueJobResult>): Promise<void> => {
    const value = found.returnvalue as QueueJobResult | null;
    if (!value || !Array.isArray(value.results)) throw new Error(`queue job ${job.id} finished without results (a worker of another version?)`);
    const byKey = new Map(job.tasks.map((t) => [t.key, t]));
    for (const { key, result } of value.results) {
      const t = byKey.get(key);
      if (!t || job.done.has(key)) continue;
      let added: number;
      try {
        added = await t.onResult(result);
      } catch (err) {
        // A result that cannot be stored is not a Redis problem: stop rather than retry forever.
        failure ??= new Error(`${t.label}: ${(err as Error).message}`);
        poke();
        return;
      }
      job.done.add(key);
      hooks.onStored(t, added);
      hooks.progress.tick(t.units);
      lastProgress = Date.now();
    }
    if (job.done.size < job.tasks.length) {
      // A job left by an earlier run held fewer tasks than are missing now (stores removed):
      // run the rest as a fresh job under the same id.
      await bounded(found.remove());
      await add(job);
      return;
    }
    job.finished = true;
    remaining--;
    await bounded(found.remove()).catch(() => undefined); // its results are stored; age removes it otherwise
    poke();
  };

  const failedMessage = (job: TrackedJob, found: Job<QueueJobData, QueueJobResult>): string =>
    `evaluation failed after ${found.attemptsMade} attempt(s) on the queue (job ${job.id}): ${found.failedReason || 'no reason given'}` +
    (job.tasks.length === 1 || /checkpoint epoch/.test(found.failedReason ?? '') ? '' : ` (job tasks: ${job.tasks.map((t) => t.label).join('; ')})`);

  /** Brings one job's record in line with Redis. Serialised per job. */
  const reconcile = (job: TrackedJob): Promise<void> => {
    if (job.finished || failure) return Promise.resolve();
    if (job.busy) {
      job.again = true;
      return job.busy;
    }
    job.busy = (async () => {
      do {
        job.again = false;
        const found = await bounded(Job.fromId<QueueJobData, QueueJobResult>(queue, job.id));
        if (!found) {
          if (job.live) {
            stats.jobsLost++;
            say(`job ${job.id} is no longer in Redis (restarted without persistence?): enqueued again`);
          }
          await add(job);
          continue;
        }
        const state = await bounded(found.getState());
        if (state === 'completed') await consume(job, found);
        else if (state === 'failed') {
          if (job.live) {
            failure ??= new Error(failedMessage(job, found));
            poke();
          } else {
            // Failed in an earlier run: the cause may be fixed, so try again.
            await bounded(found.remove());
            await add(job);
          }
        } else if (!job.live) {
          job.live = true;
          stats.jobsReused++;
        }
      } while (job.again && !job.finished && !failure);
    })().finally(() => {
      job.busy = undefined;
    });
    return job.busy;
  };

  const byId = jobs;
  const onEvent = ({ jobId }: { jobId: string }): void => {
    const job = byId.get(jobId);
    if (job) reconcile(job).catch((err: Error) => noteError(err));
  };

  const withBound = async <T>(work: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis at ${conn.display} unreachable for ${Math.round(unreachableMs / 1000)} s while ${what}${lastError ? ` (${lastError})` : ''}`)), unreachableMs);
    });
    try {
      return await Promise.race([work, bound]);
    } finally {
      clearTimeout(timer);
    }
  };

  try {
    const client = await withBound(queue.waitUntilReady(), 'connecting');
    // Events are read from Redis's clock now on: a job may finish before the events connection
    // issues its first read, and reading from '$' (the default) would miss it until a sweep.
    const [seconds, micros] = (await withBound((client as unknown as { time(): Promise<unknown> }).time(), 'connecting')) as [number | string, number | string];
    events = new QueueEvents(name, { connection: { ...conn.options, maxRetriesPerRequest: null, retryStrategy }, lastEventId: `${Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - 1}-0` });
    events.on('error', noteError);
    events.on('completed', onEvent);
    events.on('failed', onEvent);
    await withBound(events.waitUntilReady(), 'connecting');
    say(`${tasks.length} tasks in ${order.length} jobs on queue ${name} at ${conn.display}`);
    // Enqueue (or find from an earlier run) every job, a few at a time.
    let next = 0;
    await withBound(
      Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < order.length && !failure) await reconcile(order[next++]!);
        }),
      ),
      'enqueueing',
    );

    let runId = '';
    let reachableAt = Date.now();
    let workerSeenAt = Date.now();
    let lastSweep = Date.now();
    let lastStatus = Date.now();
    let wasDown = false;
    while (remaining > 0 && !failure) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, tickMs);
      });
      wake = undefined;
      if (remaining === 0 || failure) break;
      const now = Date.now();
      let fullSweep = now - lastSweep >= sweepMs;
      try {
        const client = await bounded(queue.client);
        const info = await bounded((client as unknown as { info(section: string): Promise<string> }).info('server'));
        const id = /run_id:(\w+)/.exec(info)?.[1] ?? '';
        if (runId !== '' && id !== runId) {
          say(`Redis at ${conn.display} restarted: checking every outstanding job`);
          fullSweep = true;
        }
        if (wasDown) fullSweep = true;
        runId = id;
        reachableAt = now;
        wasDown = false;
        if ((await bounded(queue.getWorkersCount())) > 0) workerSeenAt = now;
        else if (now - workerSeenAt >= noWorkerMs) {
          failure = new Error(`no evaluation worker connected to queue ${name} at ${conn.display} for ${Math.round(noWorkerMs / 1000)} s; ${remaining} jobs left (start one with: lima-harness worker --queue URL)`);
          break;
        }
        if (fullSweep) {
          lastSweep = now;
          const outstanding = order.filter((j) => !j.finished);
          let i = 0;
          await Promise.all(
            Array.from({ length: 16 }, async () => {
              while (i < outstanding.length && !failure) await reconcile(outstanding[i++]!);
            }),
          );
        }
      } catch (err) {
        noteError(err as Error);
        wasDown = true;
        if (now - reachableAt >= unreachableMs) {
          failure = new Error(`Redis at ${conn.display} unreachable for ${Math.round((now - reachableAt) / 1000)} s with ${remaining} jobs left; the results stored so far are kept and a rerun resumes (${lastError})`);
          break;
        }
      }
      if (now - Math.max(lastProgress, lastStatus) >= statusMs) {
        lastStatus = now;
        const workers = await bounded(queue.getWorkersCount()).catch(() => NaN);
        say(`waiting: ${remaining} of ${order.length} jobs outstanding, ${Number.isNaN(workers) ? 'Redis unreachable' : `${workers} worker connection(s)`}, nothing finished for ${Math.round((now - lastProgress) / 1000)} s`);
      }
    }
    if (failure) {
      // Best effort: take this study's waiting jobs off the queue (running ones finish and stay
      // in Redis, where a rerun collects them).
      await Promise.all(
        order
          .filter((j) => !j.finished)
          .map(async (j) => {
            const found = await bounded(Job.fromId(queue, j.id));
            if (found && (await bounded(found.getState())) === 'waiting') await bounded(found.remove());
          }),
      ).catch(() => undefined);
      throw failure;
    }
    return stats;
  } catch (err) {
    // Whatever the cause, the message that leaves this module carries no password.
    if (err instanceof Error) err.message = scrub(err.message, conn.secret);
    throw err;
  } finally {
    events?.off('completed', onEvent);
    events?.off('failed', onEvent);
    // Let reconciliations in flight finish writing before the stores close.
    await Promise.all(order.map((j) => j.busy?.catch(() => undefined)));
    closing = true;
    await Promise.race([Promise.all([queue.close(), events?.close()]), sleep(5000)]).catch(() => undefined);
  }
}

/** host:pid, naming a worker in results and errors. */
export function workerName(): string {
  return `${os.hostname()}:${process.pid}`;
}
