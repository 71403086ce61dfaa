// Pooled evaluation of every epoch checkpoint: held-out perplexity (batched scoring) and
// sampled generations on the dev prompts, on onnxruntime-node in a piscina worker pool.
// Tasks are submitted checkpoint by checkpoint (biggest first within one), with a bounded
// number of checkpoints in flight (src/eval/window.ts), so memory stays bounded however long the
// series. Results stream to JSONL as they finish and a rerun skips them.
import os from 'node:os';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { Piscina } from 'piscina';
import type { ChatRecord, Turn } from '../data/types.ts';
import { loadAnyCheckpoint } from '../checkpoint/index.ts';
import { cachedCheckpointSummary, checkpointSignature, rememberCheckpointSummary, type CheckpointSummary } from '../checkpoint/load-cache.ts';
import { exportOnnx, ONNX_EXPORTER_VERSION } from '../model/onnx-export.ts';
import type { ModelConfig } from '../model/config.ts';
import { stableHash } from '../util/hash.ts';
import { checkpointTokenizer } from './checkpoint-tokenizer.ts';
import { decodeContinuation, type EvalTokenizer } from './eval-tokenizer.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { sha256File } from '../util/hash.ts';
import { deriveSeed } from '../util/rng.ts';
import { createProgress } from '../util/progress.ts';
import type { EvalConfig } from './config.ts';
import { planBatches, summarizeScores, type ScoringExample } from './scoring.ts';
import { fitHeldout, heldoutCoverage, HELDOUT_FIT_VERSION, strideTokens, windowExamples, type HeldoutFit } from './heldout.ts';
import { fitPrompt } from './generate.ts';
import { JsonlStore } from './results.ts';
import type { EvalTask, EvalTaskResult, GenerationTask, PerplexityTask } from './tasks.ts';
import { queueConnection, runQueued, type QueueOptions, type QueueStats } from './queue.ts';
import { checkpointWindow, runWindowed } from './window.ts';

export { defaultEvalConfig, validateEvalConfig, type EvalConfig, type GenerationConfig } from './config.ts';

/** One scoring window of one held-out example, as stored in perplexity.jsonl. */
export interface WindowPerplexity {
  checkpointHash: string;
  epoch: number;
  exampleId: string;
  /** Window index within the example (src/eval/heldout.ts). */
  window: number;
  nll: number;
  tokens: number;
  bytes: number;
  settingsHash: string;
}

/** One held-out example at one checkpoint: its windows summed (every answer token once). */
export interface PerplexityResult {
  checkpointHash: string;
  epoch: number;
  exampleId: string;
  /** Sum over answer tokens of -ln p(token | context), nats. */
  nll: number;
  /** Answer tokens scored. */
  tokens: number;
  /** UTF-8 bytes of the answer text scored. */
  bytes: number;
  windows: number;
  settingsHash: string;
}

export interface GenerationResult {
  checkpointHash: string;
  epoch: number;
  exampleId: string;
  sample: number;
  prompt: string;
  reference: string;
  response: string;
  endedWithEot: boolean;
  newTokens: number;
  settingsHash: string;
  /**
   * The number the seeds derived from, stored only when it is not the epoch (an imported
   * series seeds by the trainer's step): part of the result's identity (generationKey).
   */
  seedKey?: number;
}

export interface CheckpointPerplexity {
  epoch: number;
  checkpointHash: string;
  perplexity: number;
  bitsPerByte: number;
  tokens: number;
}

/**
 * One checkpoint to evaluate: its folder (any format loadAnyCheckpoint reads: ours or an HF
 * GPT-2 folder), its position (what analysis calls the epoch; fractional for an HF checkpoint
 * saved by steps) and, optionally, the number its generation seeds derive from. Our own runs
 * leave seedKey out and seed by epoch (as always); imported series seed by the trainer's step,
 * so every checkpoint keeps its seeds when more checkpoints are added.
 */
export interface CheckpointEntry {
  epoch: number;
  dir: string;
  seedKey?: number;
}

export interface EvaluationOptions {
  checkpoints: CheckpointEntry[];
  heldout: ChatRecord[];
  dev: ChatRecord[];
  outDir: string;
  config: EvalConfig;
  seed: number;
  quiet?: boolean;
  /** Overrides the pool size from config.workers (evaluation during training uses 1 x 1). */
  pool?: { workers: number; threads: number };
  /** Tests only: make tasks holding this example fail on their first `failAttempts` attempts. */
  faultInjection?: { exampleId: string; failAttempts: number };
  /**
   * Run the tasks on a BullMQ queue (src/eval/queue.ts) instead of the local pool, grouped
   * `tasksPerJob` pool tasks of one checkpoint per job. The results are the same either way.
   */
  queue?: QueueOptions & { tasksPerJob: number };
  /**
   * Checkpoints in flight at once on the local pool (default checkpointWindow(workers) =
   * workers + 1; Infinity submits everything at once). Never changes a result.
   */
  window?: number;
  /**
   * Aborting it (Ctrl-C under --watch) stops the local pool: no further task starts, the tasks
   * running finish and their results are stored, then runEvaluation rejects with an error named
   * 'AbortError'. What was stored is reused by the next run.
   */
  signal?: AbortSignal;
}

export interface EvaluationResult {
  perplexity: PerplexityResult[];
  generations: GenerationResult[];
  perCheckpoint: CheckpointPerplexity[];
  /** How the held-out set fitted the scoring window (the first checkpoint's tokenizer). */
  heldoutCoverage: HeldoutFit;
  /** Each checkpoint's chat format (EvalTokenizer.description), in epoch order. */
  chatFormats: Array<{ epoch: number; description: string }>;
  seconds: number;
  /** Results computed by this call (the rest came from earlier runs' files). */
  computed: { perplexity: number; generations: number };
  workers: number;
  /** Set when the tasks ran on a queue. */
  queue?: QueueStats;
}

/** A heuristic cost, in "batched token" units, used only to order tasks biggest first. */
const GENERATION_STEP_COST = 10;

export function resolveWorkers(workers: number | 'auto'): { workers: number; threads: number } {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const count = workers === 'auto' ? cores : workers;
  return { workers: count, threads: Math.max(1, Math.floor(cores / count)) };
}

interface PreparedCheckpoint {
  epoch: number;
  /** The label generation seeds derive from (entry.seedKey, else the epoch). */
  seedKey: number;
  hash: string;
  model: ModelConfig;
  onnxPath: string;
  tokenizer: EvalTokenizer;
  /** tokenizer.key: the tokenizer's (and chat template's) identity in the settings hashes. */
  tokenizerKey: string;
  /** sha256 of the ONNX file's bytes (computed for queued runs only). */
  onnxSha256: string;
}

/**
 * Exports outDir/onnx/<epoch>.onnx unless one made from the same checkpoint (same weights
 * content hash) by this exporter exists. The checkpoint is read in whatever format it is in
 * (loadAnyCheckpoint); the hash is the same for the same weights in either format. A checkpoint
 * this process loaded before, with its files unchanged since, is not read again when its export
 * is reusable (src/checkpoint/load-cache.ts: --watch rounds).
 */
async function prepareCheckpoint(entry: CheckpointEntry, onnxDir: string): Promise<PreparedCheckpoint> {
  const onnxPath = path.join(onnxDir, `${entry.epoch}.onnx`);
  const metaPath = path.join(onnxDir, `${entry.epoch}.json`);
  const reusable = async (hash: string): Promise<boolean> => {
    try {
      const existing = JSON.parse(await fs.readFile(metaPath, 'utf8')) as { checkpointHash?: string; exporterVersion?: unknown };
      await fs.access(onnxPath);
      return existing.checkpointHash === hash && existing.exporterVersion === ONNX_EXPORTER_VERSION;
    } catch {
      return false;
    }
  };
  let ck: CheckpointSummary | undefined = await cachedCheckpointSummary(entry.dir);
  if (!ck || !(await reusable(ck.hash))) {
    const before = await checkpointSignature(entry.dir);
    const loaded = await loadAnyCheckpoint(entry.dir);
    await rememberCheckpointSummary(entry.dir, before, loaded);
    ck = loaded;
    if (!(await reusable(loaded.hash))) {
      await exportOnnx(loaded.model, loaded.weights, onnxPath);
      const meta = { checkpointHash: loaded.hash, exporterVersion: ONNX_EXPORTER_VERSION, checkpointDir: entry.dir };
      await writeFileAtomic(metaPath, JSON.stringify(meta, null, 2) + '\n');
    }
  }
  const tokenizer = await checkpointTokenizer(ck, entry.dir);
  if (tokenizer.vocabSize > ck.model.vocab) throw new Error(`checkpoint ${entry.dir}: the tokenizer has ${tokenizer.vocabSize} tokens, the model's vocabulary only ${ck.model.vocab}`);
  return { epoch: entry.epoch, seedKey: entry.seedKey ?? entry.epoch, hash: ck.hash, model: ck.model, onnxPath, tokenizer, tokenizerKey: tokenizer.key, onnxSha256: '' };
}

function checkUniqueIds(records: ChatRecord[], what: string): void {
  const seen = new Set<string>();
  for (const r of records) {
    if (typeof r?.id !== 'string' || r.id === '') throw new Error(`${what}: a record has no id (source ${r?.source ?? '?'})`);
    if (seen.has(r.id)) throw new Error(`${what}: duplicate record id ${r.id}`);
    seen.add(r.id);
  }
}

/** Splits a dev record into the prompt turns and the reference answer (its last assistant turn). */
export function splitDevRecord(record: ChatRecord): { promptTurns: Turn[]; reference: string } {
  const turns = record.turns;
  if (turns.length > 0 && turns[turns.length - 1]!.role === 'assistant') {
    return { promptTurns: turns.slice(0, -1), reference: turns[turns.length - 1]!.content };
  }
  return { promptTurns: turns, reference: '' };
}

function promptText(turns: Turn[]): string {
  if (turns.length === 1) return turns[0]!.content;
  return turns.map((t) => `${t.role}: ${t.content}`).join('\n\n');
}

const perplexityKey = (r: { checkpointHash: string; exampleId: string; window: number; settingsHash: string }): string =>
  `${r.checkpointHash}|${r.exampleId}|${r.window}|${r.settingsHash}`;
// The epoch is part of a generation's key because its seed derives from the epoch: two epochs
// with identical weights (one content hash) draw different samples. An imported series seeds by
// the trainer's step (seedKey), stored and keyed only when it differs from the epoch, so the
// keys of our own runs (seedKey = epoch), and with them their caches, are as they always were.
const generationKey = (r: { checkpointHash: string; epoch: number; exampleId: string; sample: number; settingsHash: string; seedKey?: number }): string =>
  `${r.checkpointHash}|${r.epoch}|${r.exampleId}|${r.sample}|${r.settingsHash}${r.seedKey === undefined ? '' : `|seed ${r.seedKey}`}`;
/** The seedKey field a checkpoint's generations carry: none when it seeds by its epoch. */
const seedKeyField = (ck: { epoch: number; seedKey: number }): { seedKey?: number } => (ck.seedKey === ck.epoch ? {} : { seedKey: ck.seedKey });

interface PendingTask {
  task: EvalTask;
  cost: number;
  label: string;
  exampleIds: string[];
  /** The task's identity and its group on a queue (src/eval/queue.ts). */
  key: string;
  shard: string;
  /** Index of its checkpoint in evaluation order: tasks are submitted checkpoint by checkpoint. */
  group: number;
  onResult: (result: EvalTaskResult) => Promise<number>;
}

export async function runEvaluation(opts: EvaluationOptions): Promise<EvaluationResult> {
  const started = Date.now();
  const { config, outDir } = opts;
  checkUniqueIds(opts.heldout, 'held-out set');
  checkUniqueIds(opts.dev, 'dev set');
  const { workers, threads } = opts.pool ?? resolveWorkers(config.workers);
  const gen = config.generation;

  // 1. Export (or reuse) one ONNX file per checkpoint.
  const onnxDir = path.join(outDir, 'onnx');
  const prepared: PreparedCheckpoint[] = [];
  for (const entry of [...opts.checkpoints].sort((a, b) => a.epoch - b.epoch)) prepared.push(await prepareCheckpoint(entry, onnxDir));
  if (opts.queue) {
    // Workers on other machines read the file by its absolute path and check it by its bytes'
    // hash (not the checkpoint's weightsHash: that would not catch a stale or foreign export).
    for (const ck of prepared) {
      ck.onnxPath = path.resolve(ck.onnxPath);
      ck.onnxSha256 = await sha256File(ck.onnxPath);
    }
  }
  const tasksPerJob = opts.queue?.tasksPerJob ?? 1;

  const pplStore = await JsonlStore.open<WindowPerplexity>(path.join(outDir, 'perplexity.jsonl'), perplexityKey);
  const genStore = await JsonlStore.open<GenerationResult>(path.join(outDir, 'generations.jsonl'), generationKey);

  // 2. Tokenise once per distinct tokenizer, then build every pending task.
  type Fitted = { examples: Array<ScoringExample & { exampleId: string; window: number }>; coverage: HeldoutFit };
  const fittedHeldout = new Map<string, Fitted>();
  const encodedPrompts = new Map<string, number[][]>();
  const pending: PendingTask[] = [];
  // Per checkpoint identity: the weights AND the tokenizer (with its chat template). Two
  // checkpoints with identical weights but another tokenizer score other token sequences, so
  // keying by the weights hash alone would give the second the first one's settings and results.
  const pplSettings = new Map<string, { settingsHash: string; fitted: Fitted }>();
  const pplKey = (ck: { hash: string; tokenizerKey: string }): string => `${ck.hash}|${ck.tokenizerKey}`;
  // The tokenizer is part of both settings hashes: the same weights read through another
  // tokenizer (an imported model, say) score and generate differently.
  const genSettingsOf = (tokenizerKey: string) =>
    stableHash({ kind: 'generation', exporter: ONNX_EXPORTER_VERSION, seed: opts.seed, topP: gen.topP, temperature: gen.temperature, repetitionPenalty: gen.repetitionPenalty, maxNewTokens: gen.maxNewTokens, tokenizer: tokenizerKey });
  const injected = (ids: string[], attempt: number): boolean =>
    opts.faultInjection !== undefined && ids.includes(opts.faultInjection.exampleId) && attempt < opts.faultInjection.failAttempts;

  for (const [group, ck] of prepared.entries()) {
    const window = Math.min(config.maxLength, ck.model.context);
    let stride: number;
    try {
      stride = strideTokens(config.stride, window);
    } catch (err) {
      throw new Error(`eval.stride: ${(err as Error).message} (eval.maxLength ${config.maxLength}, model context ${ck.model.context})`);
    }
    // The fitting settings are part of the results' identity: changing them recomputes.
    const settingsHash = stableHash({ kind: 'perplexity', exporter: ONNX_EXPORTER_VERSION, fit: HELDOUT_FIT_VERSION, window, stride, batchTokens: config.batchTokens, tokenizer: ck.tokenizerKey });
    const genSettingsHash = genSettingsOf(ck.tokenizerKey);
    const fitKey = `${ck.tokenizerKey}|${window}|${stride}`;
    let fitted = fittedHeldout.get(fitKey);
    if (!fitted) {
      const perRecord = opts.heldout.map((r) => {
        try {
          return fitHeldout(ck.tokenizer, r.turns, window, stride);
        } catch (err) {
          throw new Error(`held-out record ${r.id} (source ${r.source ?? '?'}): ${(err as Error).message}`);
        }
      });
      fitted = {
        examples: perRecord.flatMap((f, i) => windowExamples(opts.heldout[i]!.id, f)),
        coverage: { ...heldoutCoverage(perRecord), window, stride },
      };
      fittedHeldout.set(fitKey, fitted);
    }
    pplSettings.set(pplKey(ck), { settingsHash, fitted });
    const windowOf = new Map(fitted.examples.map((e) => [e.id, e]));
    // Batches are planned over all windows (not only the missing ones) so a resumed run
    // scores each window in exactly the batch an uninterrupted run would have used.
    let batchIndex = -1;
    for (const batch of planBatches(fitted.examples, config.batchTokens)) {
      // Shards count every batch, finished or not, so a rerun forms the same queue jobs.
      const shard = `${ck.hash}|perplexity|${settingsHash}|${Math.floor(++batchIndex / tasksPerJob)}`;
      const missing = batch.filter((e) => !pplStore.has(perplexityKey({ checkpointHash: ck.hash, exampleId: e.exampleId, window: e.window, settingsHash })));
      if (missing.length === 0) continue;
      const ids = [...new Set(batch.map((e) => e.exampleId))];
      const task: PerplexityTask = { kind: 'perplexity', onnxPath: ck.onnxPath, model: ck.model, threads, examples: batch.map(({ id, ids: tokens, lossMask, bytes }) => ({ id, ids: tokens, lossMask, bytes })) };
      pending.push({
        task,
        cost: batch.length * batch[0]!.ids.length,
        label: `checkpoint epoch ${ck.epoch} (${ck.hash.slice(0, 12)}), perplexity batch of held-out examples ${ids.join(', ')}`,
        exampleIds: ids,
        key: `${ck.hash}|${settingsHash}|${batch.map((e) => e.id).join(',')}`,
        shard,
        group,
        onResult: async (result) => {
          if (result.kind !== 'perplexity') throw new Error('worker returned a generation result for a perplexity task');
          const fresh = result.scores
            .map((s): WindowPerplexity => {
              const w = windowOf.get(s.id);
              if (!w) throw new Error(`worker returned a score for an unknown window ${s.id}`);
              return { checkpointHash: ck.hash, epoch: ck.epoch, exampleId: w.exampleId, window: w.window, nll: s.nll, tokens: s.tokens, bytes: s.bytes, settingsHash };
            })
            .filter((r) => !pplStore.has(perplexityKey(r)));
          await pplStore.append(fresh);
          return fresh.length;
        },
      });
    }

    let prompts = encodedPrompts.get(ck.tokenizerKey);
    if (!prompts) {
      prompts = opts.dev.map((r) => {
        try {
          return ck.tokenizer.encodePrompt(splitDevRecord(r).promptTurns);
        } catch (err) {
          throw new Error(`dev record ${r.id}: ${(err as Error).message}`);
        }
      });
      encodedPrompts.set(ck.tokenizerKey, prompts);
    }
    opts.dev.forEach((record, index) => {
      const { promptTurns, reference } = splitDevRecord(record);
      const promptIds = prompts[index]!;
      for (let sample = 0; sample < gen.samples; sample++) {
        const base = { checkpointHash: ck.hash, epoch: ck.epoch, exampleId: record.id, sample, settingsHash: genSettingsHash, ...seedKeyField(ck) };
        // The seed key names the shard too: a queue job (named by its shard) of another seed key
        // holds other tasks.
        const seedTag = base.seedKey === undefined ? '' : `|seed ${base.seedKey}`;
        const shard = `${ck.hash}|${ck.epoch}${seedTag}|generation|${genSettingsHash}|${Math.floor((index * gen.samples + sample) / tasksPerJob)}`;
        if (genStore.has(generationKey(base))) continue;
        const fitted = fitPrompt(promptIds, gen.maxNewTokens, ck.model.context);
        const task: GenerationTask = {
          kind: 'generation',
          onnxPath: ck.onnxPath,
          model: ck.model,
          threads,
          promptIds,
          eot: ck.tokenizer.stopIds[0]!,
          ...(ck.tokenizer.stopIds.length > 1 ? { stopIds: ck.tokenizer.stopIds.slice(1) } : {}),
          ...(ck.tokenizer.vocabSize < ck.model.vocab ? { vocabLimit: ck.tokenizer.vocabSize } : {}),
          // Seeded by epoch for our own runs (hence the epoch in generationKey), so a rerun from
          // scratch with the same config draws the same samples as before checkpoints had a
          // content hash; by the trainer's step for an imported series (CheckpointEntry.seedKey).
          seed: deriveSeed(opts.seed, ck.seedKey, record.id, sample),
          generation: gen,
        };
        pending.push({
          task,
          cost: fitted.prompt.length + GENERATION_STEP_COST * fitted.maxNew,
          label: `checkpoint epoch ${ck.epoch} (${ck.hash.slice(0, 12)}), generation for dev example ${record.id} sample ${sample}`,
          exampleIds: [record.id],
          key: generationKey(base),
          shard,
          group,
          onResult: async (result) => {
            if (result.kind !== 'generation') throw new Error('worker returned a perplexity result for a generation task');
            if (genStore.has(generationKey(base))) return 0; // a duplicate from the queue
            const out = result.output;
            await genStore.append([
              {
                ...base,
                prompt: promptText(promptTurns),
                reference,
                // The continuation after the generation prompt, as it reads there (decodeContinuation:
                // a SentencePiece answer keeps its leading space; our tokenizer's text is unchanged).
                response: decodeContinuation(ck.tokenizer, promptIds, out.ids, { skipSpecial: true }),
                endedWithEot: out.endedWithEot,
                newTokens: out.newTokens,
              },
            ]);
            return 1;
          },
        });
      }
    });
  }

  // 3. Run checkpoint by checkpoint (in evaluation order), biggest task first within each.
  pending.sort((a, b) => a.group - b.group || b.cost - a.cost);
  const computed = { perplexity: 0, generations: 0 };
  let queueStats: QueueStats | undefined;
  if (pending.length > 0 && opts.queue) {
    const totalUnits = pending.reduce((n, p) => n + (p.task.kind === 'perplexity' ? p.task.examples.length : 1), 0);
    const progress = createProgress(`eval (queue ${queueConnection(opts.queue.url).display})`, totalUnits, { quiet: opts.quiet });
    const sha = new Map(prepared.map((ck) => [ck.onnxPath, ck.onnxSha256]));
    try {
      queueStats = await runQueued(
        pending.map((p) => ({
          key: p.key,
          shard: p.shard,
          label: p.label,
          modelSha256: sha.get(p.task.onnxPath)!,
          task: p.task,
          units: p.task.kind === 'perplexity' ? p.task.examples.length : 1,
          injectFailureAttempts: opts.faultInjection && p.exampleIds.includes(opts.faultInjection.exampleId) ? opts.faultInjection.failAttempts : undefined,
          onResult: p.onResult,
        })),
        opts.queue,
        {
          progress,
          quiet: opts.quiet,
          onStored: (t, added) => {
            if (t.task.kind === 'perplexity') computed.perplexity += added;
            else computed.generations += added;
          },
        },
      );
    } finally {
      progress.done();
      await pplStore.close();
      await genStore.close();
    }
  } else if (pending.length > 0) {
    const totalUnits = pending.reduce((n, p) => n + (p.task.kind === 'perplexity' ? p.task.examples.length : 1), 0);
    const progress = createProgress(`eval (${workers} workers)`, totalUnits, { quiet: opts.quiet });
    const pool = new Piscina({
      filename: new URL('./worker.mjs', import.meta.url).href,
      minThreads: workers,
      maxThreads: workers,
      concurrentTasksPerWorker: 1,
      idleTimeout: 60_000,
    });
    const cancel = new Int32Array(new SharedArrayBuffer(4));
    let failure: Error | undefined;
    const runOne = async (p: PendingTask): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        let result: EvalTaskResult;
        try {
          result = (await pool.run({ ...p.task, injectFailure: injected(p.exampleIds, attempt), cancel })) as EvalTaskResult;
        } catch (err) {
          if (failure) return;
          const message = (err as Error)?.message ?? String(err);
          if (attempt === 0) {
            if (!opts.quiet) process.stderr.write(`\n[eval] task failed, retrying once: ${p.label}: ${message}\n`);
            continue;
          }
          failure ??= new Error(`evaluation failed twice on ${p.label}: ${message}`);
          Atomics.store(cancel, 0, 1);
          return;
        }
        if (result.kind === 'cancelled') return;
        const added = await p.onResult(result);
        if (p.task.kind === 'perplexity') computed.perplexity += added;
        else computed.generations += added;
        progress.tick(p.task.kind === 'perplexity' ? p.task.examples.length : 1, `${computed.perplexity} scored, ${computed.generations} generated`);
        return;
      }
    };
    const groups: PendingTask[][] = prepared.map(() => []);
    for (const p of pending) groups[p.group]!.push(p);
    const abort = () => Atomics.store(cancel, 0, 1);
    opts.signal?.addEventListener('abort', abort);
    try {
      await runWindowed(groups, opts.window ?? checkpointWindow(workers), runOne, () => failure !== undefined || opts.signal?.aborted === true);
    } finally {
      opts.signal?.removeEventListener('abort', abort);
      progress.done();
      await pool.destroy();
      await pplStore.close();
      await genStore.close();
    }
    if (failure) throw failure;
    if (opts.signal?.aborted) throw Object.assign(new Error('evaluation interrupted; the results stored so far are reused by the next run'), { name: 'AbortError' });
  } else {
    await pplStore.close();
    await genStore.close();
  }

  // 4. Assemble every requested result (fresh and earlier) in a stable order.
  const perplexity: PerplexityResult[] = [];
  const generations: GenerationResult[] = [];
  const perCheckpoint: CheckpointPerplexity[] = [];
  for (const ck of prepared) {
    const { settingsHash, fitted } = pplSettings.get(pplKey(ck))!;
    const byExample = new Map<string, PerplexityResult>();
    for (const w of fitted.examples) {
      const row = pplStore.get(perplexityKey({ checkpointHash: ck.hash, exampleId: w.exampleId, window: w.window, settingsHash }));
      if (!row) throw new Error(`internal: no perplexity result for checkpoint epoch ${ck.epoch}, example ${w.exampleId}, window ${w.window}`);
      const sum = byExample.get(w.exampleId);
      if (!sum) byExample.set(w.exampleId, { checkpointHash: ck.hash, epoch: ck.epoch, exampleId: w.exampleId, nll: row.nll, tokens: row.tokens, bytes: row.bytes, windows: 1, settingsHash });
      else {
        sum.nll += row.nll;
        sum.tokens += row.tokens;
        sum.bytes += row.bytes;
        sum.windows++;
      }
    }
    const rows = opts.heldout.map((r) => byExample.get(r.id)!);
    perplexity.push(...rows);
    const summary = summarizeScores(rows);
    perCheckpoint.push({ epoch: ck.epoch, checkpointHash: ck.hash, perplexity: summary.perplexity, bitsPerByte: summary.bitsPerByte, tokens: summary.tokens });
    for (const record of opts.dev) {
      for (let sample = 0; sample < gen.samples; sample++) {
        const row = genStore.get(generationKey({ checkpointHash: ck.hash, epoch: ck.epoch, exampleId: record.id, sample, settingsHash: genSettingsOf(ck.tokenizerKey), ...seedKeyField(ck) }));
        if (!row) throw new Error(`internal: no generation for checkpoint epoch ${ck.epoch}, example ${record.id}, sample ${sample}`);
        generations.push(row);
      }
    }
  }
  const heldoutFit = prepared.length > 0 ? pplSettings.get(pplKey(prepared[0]!))!.fitted.coverage : { ...heldoutCoverage([]), window: 0, stride: 0 };
  const chatFormats = prepared.map((ck) => ({ epoch: ck.epoch, description: ck.tokenizer.description }));
  return { perplexity, generations, perCheckpoint, heldoutCoverage: heldoutFit, chatFormats, seconds: (Date.now() - started) / 1000, computed, workers, ...(queueStats ? { queue: queueStats } : {}) };
}
