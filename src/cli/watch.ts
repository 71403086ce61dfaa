// --watch: a study over a checkpoint series that a trainer is still writing. Every poll looks at
// the series' folders; a folder counts once its files are complete and stable over two polls
// (src/checkpoint/watch.ts). Each newly counted checkpoint (in position order, one at a time) is
// evaluated with the ones before it, then judging, analysis and report run again, so the report
// refreshes after every checkpoint. It stops once a checkpoint at the trainer's last step is
// evaluated (trainer_state.json's max_steps, or --watch-until STEP), or on Ctrl-C. Every stage
// resumes from its caches, so a rerun picks up where a stopped watch left off.
import path from 'node:path';
import { isGgufName, listSeries, type SeriesCheckpoint } from '../checkpoint/index.ts';
import { seriesFolders } from '../checkpoint/series.ts';
import { exists, hasTrainerState, isTrainerCheckpointName, StabilityTracker, trainerMaxSteps } from '../checkpoint/watch.ts';
import { runExperiment, type ExperimentOptions, type ExperimentResult } from './experiment.ts';

export interface WatchOptions {
  /** Seconds between polls (> 0); a folder must look the same on two polls to count. */
  intervalSeconds: number;
  /** Stop once a checkpoint at this step or later is evaluated (default: trainer_state.json's max_steps). */
  untilStep?: number;
  /** Aborted by Ctrl-C: the round in progress stops after its running tasks, and the watch ends. */
  signal: AbortSignal;
  /** Where the waiting status goes (default: stderr, rewritten in place on a terminal; nothing when quiet). */
  status?: (line: string) => void;
}

export interface WatchResult {
  /** The last round's report (undefined when no checkpoint was evaluated). */
  result?: ExperimentResult;
  /** The checkpoints evaluated, in position order. */
  evaluated: SeriesCheckpoint[];
  /** Why it ended: the trainer's last checkpoint is evaluated, or Ctrl-C. */
  stopped: 'last-checkpoint' | 'interrupted';
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function stderrStatus(): { write: (line: string) => void; clear: () => void } {
  const tty = process.stderr.isTTY === true;
  let shown = '';
  return {
    write(line) {
      if (tty) {
        const width = process.stderr.columns ?? 120;
        process.stderr.write(`\r\x1b[K${line.length > width - 1 ? line.slice(0, width - 2) + '…' : line}`);
        shown = line;
      } else if (line !== shown) {
        process.stderr.write(`${line}\n`);
        shown = line;
      }
    },
    clear() {
      if (tty && shown !== '') process.stderr.write('\r\x1b[K');
      shown = '';
    },
  };
}

const isAbort = (err: unknown) => (err as Error | undefined)?.name === 'AbortError';

/**
 * Runs the study of `options` (its config must have a `checkpoints` section) over the series as
 * it grows; see the file comment. A newly counted checkpoint whose reading fails with an error
 * naming it is reported and waited for again (until its files change); other errors (a config
 * error, a series naming error, an earlier checkpoint gone) end the watch by rejecting, naming
 * the file.
 */
export async function watchExperiment(options: ExperimentOptions, watch: WatchOptions): Promise<WatchResult> {
  const spec = options.config.checkpoints;
  if (!spec) throw new Error(`--watch needs a "checkpoints" section in the config (a series written by a trainer); ${options.config.name} trains its own checkpoints`);
  if (!(watch.intervalSeconds > 0)) throw new Error(`--watch-interval: expected a positive number of seconds, got ${watch.intervalSeconds}`);
  const { signal } = watch;
  const out = stderrStatus();
  const status = watch.status ?? (options.quiet ? () => undefined : out.write);
  const log = (message: string) => {
    if (options.quiet) return;
    out.clear();
    process.stderr.write(`[lima-harness] watch: ${message}\n`);
  };
  const tracker = new StabilityTracker();
  const evaluated = new Map<string, SeriesCheckpoint>();
  let result: ExperimentResult | undefined;
  let target = watch.untilStep;

  while (!signal.aborted) {
    // 1. Poll: which folders are checkpoints (or on their way to being one), and which count.
    const candidates: string[] = [];
    let listError: string | undefined;
    try {
      for (const { dir, explicit } of await seriesFolders(spec, 'checkpoints')) {
        // As listSeries: with `dir`, folders that are no checkpoint (tensorboard's runs/) are skipped;
        // a checkpoint-<step> folder being created, or a .gguf file being written, counts as one on its way.
        if (explicit || isTrainerCheckpointName(dir) || isGgufName(dir) || (await exists(path.join(dir, 'config.json'))) || (await exists(path.join(dir, 'manifest.json')))) candidates.push(dir);
      }
    } catch (err) {
      listError = (err as Error).message; // the run directory may not exist yet
    }
    let requireTrainerState = false;
    for (const dir of candidates) if (await hasTrainerState(dir)) requireTrainerState = true;
    const waiting: Array<{ name: string; what: string }> = [];
    for (const dir of candidates) {
      const seen = await tracker.observe(dir, { requireTrainerState });
      if (!seen.ready) waiting.push({ name: path.basename(dir), what: seen.waitingFor ?? '?' });
    }

    // 2. A newly counted checkpoint: evaluate it with those before, then judge, analyse, report.
    if (candidates.some((dir) => tracker.isReady(dir) && !evaluated.has(dir))) {
      const listed = await listSeries(spec, 'checkpoints', (dir) => tracker.isReady(dir));
      const next = listed.find((c) => !evaluated.has(c.dir));
      if (next) {
        const series = listed.filter((c) => evaluated.has(c.dir) || c === next);
        log(`${path.basename(next.dir)} (step ${next.step}, position ${next.position}) is complete: evaluating it, then the report over ${series.length} checkpoint${series.length === 1 ? '' : 's'}`);
        let round: ExperimentResult | undefined;
        try {
          round = await runExperiment({ ...options, series, signal });
        } catch (err) {
          if (isAbort(err)) break;
          // An error naming the new checkpoint's path (its reader's: a truncated or malformed
          // file, a tokenizer that does not fit) may be the trainer's doing, caught between two
          // writes: reported, and the checkpoint read again once its files change. Any other
          // error (config, data, an earlier checkpoint) cannot resolve itself: the watch ends.
          if (!(err as Error | undefined)?.message?.includes(next.dir)) throw err;
          log(`${path.basename(next.dir)} could not be read; it is read again once its files change: ${(err as Error).message}`);
          await tracker.failed(next.dir);
        }
        if (round === undefined) continue;
        result = round;
        evaluated.set(next.dir, next);
        if (result.reportHtml) log(`report refreshed (${series.length} checkpoint${series.length === 1 ? '' : 's'}): ${result.reportHtml}`);
        if (watch.untilStep === undefined) {
          const max = await trainerMaxSteps(next.dir);
          if (max !== undefined) target = Math.max(target ?? 0, max);
        }
        continue; // poll again at once: more may have landed meanwhile
      }
    }

    // 3. Done when a checkpoint at the last step is evaluated and nothing complete is still settling.
    const done = [...evaluated.values()].sort((a, b) => a.position - b.position);
    const last = done[done.length - 1];
    const reached = target !== undefined && done.some((c) => c.step >= target!);
    const settling = waiting.filter((w) => w.what === 'its files to stop changing');
    if (reached && settling.length === 0) {
      if (waiting.length > 0) log(`not evaluated (incomplete when the last checkpoint was done): ${waiting.map((w) => `${w.name} (waiting for ${w.what})`).join(', ')}`);
      log(`stopping: a checkpoint at step ${target}${watch.untilStep === undefined ? " (trainer_state.json's max_steps)" : ' (--watch-until)'} is evaluated; ${done.length} checkpoint${done.length === 1 ? '' : 's'} in the report`);
      out.clear();
      return { result, evaluated: done, stopped: 'last-checkpoint' };
    }

    // 4. Wait, saying for what.
    const progress = last ? `${done.length} evaluated, last ${path.basename(last.dir)} (step ${last.step}${target !== undefined ? ` of ${target}` : ''})` : 'none evaluated yet';
    const pending = listError ? listError : waiting.length > 0 ? `waiting for ${waiting.map((w) => `${w.name} (${w.what})`).join(', ')}` : 'waiting for the next checkpoint';
    status(`[watch] ${progress}; ${pending}; polling every ${watch.intervalSeconds} s; Ctrl-C stops (a rerun resumes)`);
    await abortableSleep(watch.intervalSeconds * 1000, signal);
  }
  out.clear();
  return { result, evaluated: [...evaluated.values()].sort((a, b) => a.position - b.position), stopped: 'interrupted' };
}
