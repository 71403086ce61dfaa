// The thread that evaluates checkpoints while training runs on the main thread. It has its own
// event loop, so the pool is fed while a synchronous training step holds the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { runEvaluation } from './index.ts';
import type { DuringTrainingData, DuringTrainingMessage, DuringTrainingSummary } from './during-training.ts';

const data = workerData as DuringTrainingData;
const port = parentPort!;
const summary: DuringTrainingSummary = { checkpoints: 0, seconds: 0 };
let chain: Promise<void> = Promise.resolve();
let stopped = false;

port.on('message', (message: DuringTrainingMessage) => {
  if (message.kind === 'stop') {
    stopped = true;
    void chain.then(() => {
      port.postMessage(summary);
      port.close();
    });
    return;
  }
  chain = chain.then(async () => {
    if (stopped || summary.error) return;
    const started = Date.now();
    try {
      await runEvaluation({ ...data, checkpoints: [message.checkpoint], quiet: true, pool: { workers: 1, threads: 1 } });
      summary.checkpoints += 1;
    } catch (err) {
      summary.error = (err as Error).message;
    } finally {
      summary.seconds += (Date.now() - started) / 1000;
    }
  });
});
