// A real redis-server (Debian's package) on 127.0.0.1 at a free port, without persistence, and
// `lima-harness worker` processes for the queue tests. Everything started here is stopped by
// the returned handles; tests call them in after().
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const REDIS_SERVER = '/usr/bin/redis-server';

/** Why the queue tests cannot run here, or undefined when redis-server is available. */
export function redisMissing(): string | undefined {
  const probe = spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? undefined : `${REDIS_SERVER} not available (apt-get install redis-server)`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => (socket.end(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`redis-server did not accept connections on port ${port} within ${ms} ms`);
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

export interface RedisHandle {
  port: number;
  /** redis://[:password@]127.0.0.1:port */
  url: string;
  /** Kills the server (SIGKILL: nothing is saved, as without persistence anyway). */
  kill(): Promise<void>;
  /** Starts a fresh, empty server on the same port. */
  start(): Promise<void>;
}

export async function startRedis(options: { password?: string } = {}): Promise<RedisHandle> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const handle: RedisHandle = {
    port,
    url: `redis://${options.password ? `:${options.password}@` : ''}127.0.0.1:${port}`,
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];
      if (options.password) args.push('--requirepass', options.password);
      child = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
      await waitForPort(port, 10_000);
    },
    async kill() {
      if (!child) return;
      const c = child;
      child = undefined;
      c.kill('SIGKILL');
      await exited(c);
    },
  };
  await handle.start();
  return handle;
}

export interface WorkerHandle {
  child: ChildProcess;
  /** Everything the worker wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the output matches `pattern` (rejects after `ms`). */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `lima-harness worker` (1 pool worker of 1 thread, a short lock) and waits until it serves. */
export async function startWorker(url: string, options: { env?: Record<string, string>; args?: string[]; waitReady?: boolean } = {}): Promise<WorkerHandle> {
  const child = spawn(process.execPath, [path.join(root, 'bin/lima-harness.mjs'), 'worker', '--queue', url, '--workers', '1', '--threads', '1', '--lock-ms', '1500', '--verbose', ...(options.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const handle: WorkerHandle = {
    child,
    output: () => text,
    waitFor(pattern, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = text.match(pattern);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`worker output did not match ${pattern} within ${ms} ms:\n${text}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited(child);
    },
  };
  if (options.waitReady !== false) await handle.waitFor(/serving queue/);
  return handle;
}
