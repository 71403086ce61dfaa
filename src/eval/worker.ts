// Pool worker: keeps one onnxruntime session per exported checkpoint (a worker sees tasks of
// every checkpoint, interleaved by size) and runs scoring or generation tasks.
import { DecoderSession } from './session.ts';
import { scoreBatch } from './scoring.ts';
import { generateIds } from './generate.ts';
import type { EvalTask, EvalTaskResult } from './tasks.ts';

const MAX_SESSIONS = 32;
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
  return { kind: 'generation', output: await generateIds(session, task.promptIds, task.generation, { seed: task.seed, eot: task.eot, stopIds: task.stopIds }) };
}
