// Bounded submission for long checkpoint series: the tasks of one checkpoint form a group, groups
// are started in checkpoint order, and at most `window` groups are in flight (started, not every
// task finished) at any time. A group starts as soon as any in-flight group finishes.
//
// Why: submitting every task of every checkpoint at once makes every worker see every
// checkpoint, so each worker ends up holding a session per checkpoint (15 checkpoints of a
// ~30M-parameter model: ~15 x 120 MB of weights per worker, plus onnxruntime's buffers). In
// checkpoint order a worker only moves on to the next checkpoint, so a small session cache per
// worker (src/eval/worker.ts) suffices. Which task runs where never changes a result (seeds
// derive from the checkpoint and the example, batches are planned over all windows), so the
// results are the same as with everything submitted at once.

/**
 * How many checkpoints may be in flight for `workers` pool workers: workers + 1. Each worker
 * can be busy with the last task of a different checkpoint while one more checkpoint's tasks
 * wait in the queue, so no worker idles for want of submitted work, and the piscina queue never
 * holds more than workers + 1 checkpoints' tasks (the workers' session caches of 2 then cover
 * the checkpoint being finished and the one being started).
 */
export function checkpointWindow(workers: number): number {
  return Math.max(1, Math.floor(workers)) + 1;
}

/**
 * Runs `groups[g]`'s items with `run(item, g)`, groups in index order, at most `window` groups in
 * flight (window >= 1; Infinity runs them all at once). Items of one group are started together,
 * in their order. `stop()` is checked before a group starts: once it returns true no further group
 * starts (those in flight finish). Rejects with the first error `run` throws, after every item
 * already started has settled; no group starts after it.
 */
export async function runWindowed<T>(groups: readonly (readonly T[])[], window: number, run: (item: T, group: number) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  if (!(window >= 1)) throw new Error(`runWindowed: window must be at least 1, got ${window}`);
  let next = 0;
  let error: unknown;
  let failed = false;
  // Each lane runs one group at a time, so `window` lanes keep at most `window` groups in flight.
  const lane = async (): Promise<void> => {
    while (next < groups.length && !failed && !stop()) {
      const g = next++;
      // Every item of the group is awaited, failed or not, so nothing runs on after a rejection.
      const settled = await Promise.allSettled(groups[g]!.map((item) => run(item, g)));
      const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (rejected && !failed) {
        error = rejected.reason;
        failed = true;
      }
    }
  };
  const lanes = Math.min(groups.length, window === Infinity ? groups.length : Math.floor(window));
  await Promise.all(Array.from({ length: lanes }, lane));
  if (failed) throw error;
}
