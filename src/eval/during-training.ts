// Evaluation during training: finished checkpoints are evaluated on one single-threaded worker
// while tfjs-wasm trains on the other core. Results land in the same files as the final pass,
// which then skips them, so the metrics are the same either way; only the timing changes.
// The coordinator runs in its own thread: on the main thread a pool is only fed between
// training steps, and one checkpoint then took ~90 s instead of ~2 s (measured on the default).
import { Worker } from 'node:worker_threads';
import type { EvaluationOptions } from './index.ts';

export type DuringTrainingData = Pick<EvaluationOptions, 'heldout' | 'dev' | 'outDir' | 'config' | 'seed'>;
export type DuringTrainingMessage = { kind: 'evaluate'; checkpoint: { epoch: number; dir: string } } | { kind: 'stop' };
export interface DuringTrainingSummary {
  /** Checkpoints fully evaluated before stop(). */
  checkpoints: number;
  seconds: number;
  /** The first failure; evaluation stopped there and the final pass redoes what is missing. */
  error?: string;
}

export interface DuringTraining {
  add(checkpoint: { epoch: number; dir: string }): void;
  /** Skips checkpoints not started yet, waits for the one in progress. */
  stop(): Promise<DuringTrainingSummary>;
}

export function evaluateDuringTraining(data: DuringTrainingData): DuringTraining {
  const worker = new Worker(new URL('./during-training-thread.mjs', import.meta.url), { workerData: data });
  let failed: string | undefined;
  worker.on('error', (err) => {
    failed ??= err.message;
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    add(checkpoint) {
      if (!failed) worker.postMessage({ kind: 'evaluate', checkpoint } satisfies DuringTrainingMessage);
    },
    async stop() {
      if (failed) return { checkpoints: 0, seconds: 0, error: failed };
      const summary = new Promise<DuringTrainingSummary>((resolve) => {
        worker.once('message', (m: DuringTrainingSummary) => resolve(m));
        void exited.then(() => resolve({ checkpoints: 0, seconds: 0, error: failed ?? 'the evaluation thread exited early' }));
      });
      worker.postMessage({ kind: 'stop' } satisfies DuringTrainingMessage);
      const result = await summary;
      await exited;
      return result;
    },
  };
}
