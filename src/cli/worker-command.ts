// `lima-harness worker --queue URL`: a long-running evaluation worker on the BullMQ queue
// (src/eval/queue-worker.ts). Runs until SIGINT or SIGTERM, then finishes its running jobs.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { startQueueWorker, parsePathMap } from '../eval/queue-worker.ts';
import { validateQueueUrl } from '../eval/config.ts';

export const WORKER_USAGE = `Usage: lima-harness worker --queue redis://[:PASSWORD@]HOST:PORT [options]

Runs the evaluation tasks a study puts on the queue (lima-harness experiment --queue URL).
Start as many as you like, on any machine that reaches Redis and sees the study's run
directory on shared storage.

Options:
  --queue URL          redis://HOST:PORT, redis://:PASSWORD@HOST:PORT or rediss://... (TLS);
                       a password left out of the URL is read from LIMA_QUEUE_PASSWORD
  --workers N          pool threads in this process, and jobs taken at once (default: CPU cores)
  --threads T          onnxruntime threads per pool thread (default: cores / workers)
  --path-map FROM=TO   read model files under FROM at TO instead (repeatable), when the shared
                       storage is mounted elsewhere on this machine
  --lock-ms MS         BullMQ job lock: a job whose worker died goes to another after about
                       this long (default 30000; every worker should use the same value)
  --queue-name NAME    the queue (default lima-eval; the study's --queue-name must match)
  --verbose            a line per job
  -h, --help           this help`;

export async function workerCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      queue: { type: 'string' },
      workers: { type: 'string' },
      threads: { type: 'string' },
      'path-map': { type: 'string', multiple: true },
      'lock-ms': { type: 'string' },
      'queue-name': { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    console.log(WORKER_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new Error(`worker: unexpected argument ${JSON.stringify(positionals[0])}\n\n${WORKER_USAGE}`);
  if (!values.queue) throw new Error(`worker: --queue is required\n\n${WORKER_USAGE}`);
  const url = validateQueueUrl(values.queue, '--queue');
  const cores = os.availableParallelism();
  const int = (v: string | undefined, flag: string, fallback: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`worker: ${flag} must be a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };
  const workers = int(values.workers, '--workers', cores);
  const threads = int(values.threads, '--threads', Math.max(1, Math.floor(cores / workers)));
  const handle = await startQueueWorker({
    url,
    name: values['queue-name'],
    workers,
    threads,
    pathMap: parsePathMap(values['path-map'] ?? []),
    lockMs: values['lock-ms'] === undefined ? undefined : int(values['lock-ms'], '--lock-ms', 30_000),
    verbose: values.verbose,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`[worker] ${signal}: finishing running jobs\n`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await handle.close();
  return 0;
}

/** Entry point for `lima-harness worker ...` (bin/lima-harness.mjs routes it here directly). */
export async function main(argv: string[]): Promise<number> {
  try {
    return await workerCommand(argv.slice(1));
  } catch (err) {
    if (process.env.LIMA_DEBUG === '1') console.error(err);
    console.error(`lima-harness worker: error: ${err instanceof Error ? err.message : String(err)}`);
    return (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || /--queue is required|unexpected argument/.test(String(err)) ? 2 : 1;
  }
}
