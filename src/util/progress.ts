// A progress bar on stderr for long work. On a terminal it redraws one line; elsewhere (CI,
// logs) it prints a plain line at most every few seconds so logs stay readable.
export interface Progress {
  /** Advance by `n` (default 1); `info` is shown after the bar (e.g. "loss 2.31 | 640 tok/s"). */
  tick(n?: number, info?: string): void;
  /** Set the absolute position. */
  update(done: number, info?: string): void;
  /** Finish the bar (prints the final state). */
  done(info?: string): void;
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Minimum milliseconds between plain-log lines when not on a TTY. */
  logEveryMs?: number;
  /** Silence entirely (tests). */
  quiet?: boolean;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function createProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const quiet = options.quiet ?? process.env.LIMA_QUIET === '1';
  const tty = Boolean(stream.isTTY);
  const logEveryMs = options.logEveryMs ?? 5000;
  const start = Date.now();
  let position = 0;
  let lastInfo = '';
  let lastLog = 0;
  let finished = false;

  const render = (final: boolean): void => {
    if (quiet) return;
    const now = Date.now();
    if (!tty && !final && now - lastLog < logEveryMs) return;
    lastLog = now;
    const fraction = total > 0 ? Math.min(1, position / total) : 1;
    const elapsed = (now - start) / 1000;
    const eta = position > 0 ? (elapsed * (total - position)) / position : NaN;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const text = `${label} [${bar}] ${position}/${total} ${(fraction * 100).toFixed(0)}% | ${formatSeconds(elapsed)} elapsed | ETA ${final ? '0s' : formatSeconds(eta)}${lastInfo ? ' | ' + lastInfo : ''}`;
    if (tty) stream.write(`\r\x1b[K${text}${final ? '\n' : ''}`);
    else stream.write(text + '\n');
  };

  return {
    tick(n = 1, info) {
      position += n;
      if (info !== undefined) lastInfo = info;
      render(false);
    },
    update(done, info) {
      position = done;
      if (info !== undefined) lastInfo = info;
      render(false);
    },
    done(info) {
      if (finished) return;
      finished = true;
      if (info !== undefined) lastInfo = info;
      render(true);
    },
  };
}
