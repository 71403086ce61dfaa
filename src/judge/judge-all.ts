// Judging many inputs with a bounded number in flight; results come back in input order.
import { createProgress } from '../util/progress.ts';
import type { Judge, JudgeInput, Judgment } from './types.ts';

export interface JudgeAllOptions {
  concurrency: number;
  onProgress?: (done: number) => void;
}

/**
 * Judges every input (at most `concurrency` at once). The first error stops new work; the
 * judgments in flight are allowed to finish (so they reach the cache) and then the error is
 * thrown. Shows a progress bar on stderr unless LIMA_QUIET=1.
 */
export async function judgeAll(judge: Judge, inputs: JudgeInput[], opts: JudgeAllOptions): Promise<Judgment[]> {
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new Error(`judgeAll: concurrency must be an integer >= 1, got ${opts.concurrency}`);
  const results: Judgment[] = new Array(inputs.length);
  const progress = createProgress(`judge (${judge.kind})`, inputs.length);
  let next = 0;
  let done = 0;
  let failure: { error: unknown } | undefined;

  async function worker(): Promise<void> {
    while (failure === undefined && next < inputs.length) {
      const index = next++;
      try {
        results[index] = await judge.judge(inputs[index]!);
      } catch (error) {
        failure ??= { error };
        return;
      }
      done++;
      const s = judge.stats();
      progress.tick(1, judge.kind === 'llm' ? `${s.requests} requests | ${s.cacheHits} cached | ${s.invalid} invalid` : undefined);
      opts.onProgress?.(done);
    }
  }

  const workers = Array.from({ length: Math.min(opts.concurrency, inputs.length) }, () => worker());
  await Promise.all(workers);
  progress.done();
  if (failure) throw failure.error;
  return results;
}
