// Pool worker: keeps an onnxruntime session for the checkpoints it works on and runs scoring or
// generation tasks. Tasks arrive checkpoint by checkpoint (src/eval/window.ts), so a worker only
// moves from one checkpoint to the next: a cache of 2 sessions keeps the one it is finishing and
// the one it is starting (a task of an older checkpoint after that reloads its session: slower,
// never different). A session holds its model's weights (a ~30M-parameter float32 model:
// ~120 MB, plus onnxruntime's buffers), so 2 per worker instead of the former 32 bounds a
// worker's memory however long the series.
import { DecoderSession } from './session.ts';
import { scoreBatch } from './scoring.ts';
import { generateIds } from './generate.ts';
import type { EvalTask, EvalTaskResult } from './tasks.ts';

const MAX_SESSIONS = 2;
const sessions = new Map<string, Promise<DecoderSession>>();

function getSession(task: EvalTask): Promise<DecoderSession> {
  const key = `${task.onnxPath}#${task.threads}#${task.modelSha256 ?? ''}`;
  let session = sessions.get(key);
  if (session) {
    sessions.delete(key); // re-insert: Map order is the LRU order
  } else {
    session = DecoderSession.create(task.onnxPath, task.model, { threads: task.threads });
    session.catch(() => sessions.delete(key));
  }
  sessions.set(key, session);
  if (sessions.size > MAX_SESSIONS) {
    const [oldestKey, oldest] = sessions.entries().next().value as [string, Promise<DecoderSession>];
    sessions.delete(oldestKey);
    void oldest.then((s) => s.release()).catch(() => undefined);
  }
  return session;
}

export default async function runTask(task: EvalTask): Promise<EvalTaskResult> {
  // Queued tasks of a failed run drain at once (aborting threads mid-task races with piscina).
  if (task.cancel && Atomics.load(task.cancel, 0) !== 0) return { kind: 'cancelled' };
  if (task.injectFailure) throw new Error('injected failure (test hook)');
  const session = await getSession(task);
  if (task.kind === 'perplexity') return { kind: 'perplexity', scores: await scoreBatch(session, task.examples) };
  return { kind: 'generation', output: await generateIds(session, task.promptIds, task.generation, { seed: task.seed, eot: task.eot, stopIds: task.stopIds, vocabLimit: task.vocabLimit }) };
}
