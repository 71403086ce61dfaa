// The whole study, stage by stage: prepare data -> tokenizer -> train (a checkpoint per epoch)
// -> pooled evaluation (perplexity + generations) -> judging -> analysis -> report.
// Every stage keeps its results on disk and skips what is already finished, so a run killed
// at any moment finishes on rerun with the same metrics and recomputes nothing finished.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ExperimentConfig } from './config.ts';
import { stableHash } from '../util/hash.ts';
import { writeFileAtomic, writeFileAtomicSync } from '../util/atomic.ts';
import { prepareData, readJsonl, type PreparedData } from '../data/prepare.ts';
import type { ChatRecord } from '../data/types.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { encodeChat, trainingTexts } from '../data/chat-format.ts';
import { groupChatFormats } from '../eval/eval-tokenizer.ts';
import { runTraining, type TrainRunResult } from '../train/run.ts';
import { pretrainBase, type PretrainedBase } from '../train/base.ts';
import { collectPretrainText } from '../data/pretrain-cache.ts';
import { listCheckpoints, listSeries, loadCheckpoint, seriesPositionUnit, type SeriesCheckpoint } from '../checkpoint/index.ts';
import { runEvaluation, type CheckpointEntry, type GenerationResult } from '../eval/index.ts';
import { queueConnection } from '../eval/queue.ts';
import { evaluateDuringTraining } from '../eval/during-training.ts';
import { createJudge, judgeAll, judgeConcurrency, type JudgeInput, type Judgment } from '../judge/index.ts';
import { analyze, type AnalysisInput, type DrilldownExample } from '../analysis/index.ts';
import { EVAL_DURING_TRAINING } from '../analysis/types.ts';
import { writeReport } from '../report/index.ts';

export type Stage = 'data' | 'train' | 'eval' | 'judge' | 'report';
const STAGES: Stage[] = ['data', 'train', 'eval', 'judge', 'report'];

export interface ExperimentOptions {
  config: ExperimentConfig;
  /** Where the report goes (default reports/<name>). */
  outDir?: string;
  /** Where checkpoints and intermediate results go (default checkpoints/<name>). */
  runDir?: string;
  /** Stop after this stage (`lima-harness train` stops after 'train'). */
  until?: Stage;
  quiet?: boolean;
  /** Where pretrained bases are kept, content-addressed (default: bases/ beside the run directory, i.e. checkpoints/bases). */
  basesDir?: string;
  /** The BullMQ queue's name when config.eval.queue is set (default lima-eval). */
  queueName?: string;
  /**
   * With a `checkpoints` section: the checkpoints to study instead of every folder listed
   * (--watch: those complete so far, src/cli/watch.ts).
   */
  series?: SeriesCheckpoint[];
  /**
   * Aborted (Ctrl-C under --watch): evaluation stops after the tasks running (their results
   * stored), and no later stage starts; runExperiment rejects with an error named 'AbortError'.
   */
  signal?: AbortSignal;
}

export interface ExperimentResult {
  runDir: string;
  reportDir?: string;
  reportHtml?: string;
  metricsFile?: string;
}

function log(quiet: boolean | undefined, message: string): void {
  if (!quiet) process.stderr.write(`[lima-harness] ${message}\n`);
}

/**
 * What must match for a rerun to reuse a run directory: everything that changes the data, the
 * tokenizer or the checkpoints. Evaluation, judging and analysis settings are left out: their
 * results are stored under a hash of their own settings, so changing them recomputes only them.
 */
function runIdentity(config: ExperimentConfig): Record<string, unknown> {
  const { name: _name, description: _description, analysis: _analysis, judge: _judge, eval: _eval, ...rest } = config;
  return rest;
}

async function checkRunIdentity(runDir: string, config: ExperimentConfig): Promise<void> {
  const file = path.join(runDir, 'run.json');
  const identity = runIdentity(config);
  const hash = stableHash(identity);
  try {
    const existing = JSON.parse(await fs.readFile(file, 'utf8')) as { configHash: string };
    if (existing.configHash !== hash) {
      throw new Error(
        `${runDir} holds a run made with a different config (data, model, training or evaluation settings changed). ` +
          `Give the experiment another "name", or remove ${runDir} to start over.`,
      );
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await writeFileAtomic(file, JSON.stringify({ configHash: hash, identity }, null, 2) + '\n');
  }
}

/** Trains the tokenizer once per run (reused on rerun when the data is the same). */
async function prepareTokenizer(runDir: string, data: PreparedData, train: ChatRecord[], pretrain: string[], vocabSize: number, quiet?: boolean): Promise<BpeTokenizer> {
  const file = path.join(runDir, 'tokenizer.json');
  const metaFile = path.join(runDir, 'tokenizer.meta.json');
  const key = stableHash({ data: data.hash, vocabSize, pretrain: pretrain.length });
  try {
    const meta = JSON.parse(await fs.readFile(metaFile, 'utf8')) as { key: string };
    if (meta.key === key) return BpeTokenizer.fromJSON(JSON.parse(await fs.readFile(file, 'utf8')));
  } catch {
    // not there yet: train it
  }
  const started = Date.now();
  const tokenizer = BpeTokenizer.train([...trainingTexts(train), ...pretrain], vocabSize);
  await writeFileAtomic(file, JSON.stringify(tokenizer.toJSON()));
  await writeFileAtomic(metaFile, JSON.stringify({ key }) + '\n');
  log(quiet, `tokenizer: byte-level BPE with ${tokenizer.vocabSize} tokens trained in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return tokenizer;
}

async function readTimings(file: string): Promise<Record<string, number>> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, number>;
  } catch {
    return {};
  }
}

export async function runExperiment(options: ExperimentOptions): Promise<ExperimentResult> {
  const { config, quiet } = options;
  const runDir = path.resolve(options.runDir ?? path.join('checkpoints', config.name));
  const reportDir = path.resolve(options.outDir ?? path.join('reports', config.name));
  const until = STAGES.indexOf(options.until ?? 'report');
  // A series trained elsewhere is listed and checked (listSeries: folders, formats, positions)
  // before anything is written: a config whose checkpoints cannot be listed leaves no run
  // directory behind.
  const listStarted = Date.now();
  const listed = config.checkpoints ? (options.series ?? (await listSeries(config.checkpoints, 'checkpoints'))) : undefined;
  const listSeconds = (Date.now() - listStarted) / 1000;
  await fs.mkdir(runDir, { recursive: true });
  await checkRunIdentity(runDir, config);
  // Durations add up over resumed runs: a stage's time is the time actually spent on it.
  const timingsFile = path.join(runDir, 'durations.json');
  const durations = await readTimings(timingsFile);
  if (listed && !options.series) durations.checkpoints = (durations.checkpoints ?? 0) + listSeconds;
  const timed = async <T>(stage: string, work: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    const soFar = () => ({ ...durations, [stage]: (durations[stage] ?? 0) + (Date.now() - started) / 1000 });
    // Saved every few seconds too (whenever the event loop runs, at least once per epoch), so a
    // run that is killed keeps the time it spent and the report's run time counts it.
    const flush = setInterval(() => {
      try {
        writeFileAtomicSync(timingsFile, JSON.stringify(soFar(), null, 2) + '\n');
      } catch {
        // Timings are informative; the write at the end of the stage reports a real disk problem.
      }
    }, 5000);
    flush.unref();
    try {
      return await work();
    } finally {
      clearInterval(flush);
      Object.assign(durations, soFar());
      await writeFileAtomic(timingsFile, JSON.stringify(durations, null, 2) + '\n');
    }
  };

  // 1. Data.
  log(quiet, `stage 1/6 data -> ${path.join(runDir, 'data')}`);
  const data = await timed('data', () => prepareData(config.data, config.seed, path.join(runDir, 'data')));
  log(quiet, `data: train ${data.counts.train}, held-out ${data.counts.heldout}, dev ${data.counts.dev}${data.counts.pretrain ? `, pretraining texts ${data.counts.pretrain}` : ''}`);
  const trainRecords = await readJsonl<ChatRecord>(data.train);
  const heldout = await readJsonl<ChatRecord>(data.heldout);
  const dev = await readJsonl<ChatRecord>(data.dev);
  const pretrainTexts = data.pretrain ? (await readJsonl<{ text: string }>(data.pretrain)).map((r) => r.text) : [];
  if (until < STAGES.indexOf('train')) return { runDir };

  // 2-3. Either a checkpoint series trained elsewhere (config.checkpoints), or tokenizer, base and
  // training here. Both end in the checkpoints to evaluate (position = what analysis calls the
  // epoch), their train-loss rows and the backend description.
  let checkpoints: CheckpointEntry[];
  let epochRows: () => Promise<AnalysisInput['epochs']>;
  let backend: Record<string, unknown>;
  let pretrained: PretrainedBase | undefined;
  let positionUnit: AnalysisInput['positionUnit'];
  if (config.checkpoints) {
    const spec = config.checkpoints;
    log(quiet, `stage 2-3/6 checkpoints: ${spec.dir !== undefined ? `the checkpoints in ${spec.dir}` : spec.glob} (format ${spec.format})`);
    const series = listed!;
    const formats = [...new Set(series.map((c) => c.format))].sort();
    log(quiet, `checkpoints: ${series.length} (${formats.join(', ')}) at positions ${series.map((c) => c.position).join(', ')}`);
    if (until < STAGES.indexOf('eval')) return { runDir };
    checkpoints = series.map((c) => ({ epoch: c.position, dir: c.dir, seedKey: c.seedKey }));
    epochRows = async () => series.map((c) => ({ epoch: c.position, trainLoss: c.trainLoss, ...(c.trainer ? { trainer: c.trainer } : {}), checkpoint: shownPath(c.dir) }));
    positionUnit = seriesPositionUnit(series);
    backend = { training: `imported checkpoint series (${formats.join(', ')})`, evaluation: 'onnxruntime-node (cpu)', evalWorkers: config.eval.workers };
  } else {
    const trainConfig = config.train!;
    const modelShape = config.model!;
    // 2. Tokenizer, base and training. A pretrained base brings its own tokenizer (trained on the
    // pretraining text alone); otherwise the tokenizer is trained on this study's text.
    const base = trainConfig.base;
    let tokenizer: BpeTokenizer;
    let baseContent: string | undefined;
    if (base.kind === 'pretrain') {
      log(quiet, 'stage 2/6 base: pretraining text, tokenizer and pretraining');
      const text = await timed('data', () =>
        collectPretrainText({
          sources: base.sources,
          wordnetTexts: base.wordnetTexts,
          builtinTexts: pretrainTexts,
          exclude: [...heldout, ...dev],
          seed: config.seed,
          cacheDir: path.join(runDir, 'data'),
        }),
      );
      log(quiet, `pretraining text: ${text.documents.length} documents (${text.provenance.dropped} dropped as duplicates of held-out/dev questions)`);
      pretrained = await timed('pretrain', () =>
        pretrainBase({
          basesDir: options.basesDir ?? path.join(path.dirname(runDir), 'bases'),
          model: modelShape,
          vocabSize: config.tokenizer.vocabSize,
          base,
          train: trainConfig,
          seed: config.seed,
          documents: text.documents,
          provenance: text.provenance,
          quiet,
        }),
      );
      tokenizer = pretrained.tokenizer;
      baseContent = pretrained.hash;
    } else if (base.kind === 'checkpoint') {
      // A checkpoint base's embedding rows mean its own tokenizer's ids: fine-tune with that one.
      log(quiet, `stage 2/6 tokenizer: the base checkpoint's (${base.path})`);
      const loaded = await loadCheckpoint(path.resolve(base.path));
      tokenizer = BpeTokenizer.fromJSON(loaded.tokenizer);
      baseContent = stableHash({ weights: loaded.hash, tokenizer: loaded.tokenizerHash });
    } else {
      log(quiet, 'stage 2/6 tokenizer');
      tokenizer = await timed('tokenizer', () => prepareTokenizer(runDir, data, trainRecords, pretrainTexts, config.tokenizer.vocabSize, quiet));
    }
    const model = { ...modelShape, vocab: tokenizer.vocabSize };
    const examples = trainRecords.map((r) => encodeChat(tokenizer, r.turns, trainConfig.maxLength));
    const trimmed = examples.filter((e) => e.trimmed).length;
    if (trimmed > 0) log(quiet, `train: ${trimmed} of ${examples.length} examples trimmed at ${trainConfig.maxLength} tokens`);
    // The base (epoch 0): evaluated like every epoch, kept out of correlation and selection.
    const baseCheckpoint = pretrained ? { epoch: 0, dir: pretrained.dir } : base.kind === 'checkpoint' ? { epoch: 0, dir: path.resolve(base.path) } : undefined;
    // The fine-tune's checkpoints depend on the base's content, not only on the config naming it.
    const trainHash = baseContent ? stableHash({ run: runIdentity(config), base: baseContent }) : stableHash(runIdentity(config));
    log(quiet, `stage 3/6 train -> ${runDir}`);
    // Evaluation during training only when there is training left to overlap with.
    const trained = (await listCheckpoints(runDir)).filter((c) => c.epoch <= trainConfig.epochs);
    const overlap = config.eval.overlapTraining && until >= STAGES.indexOf('eval') && !trained.some((c) => c.epoch === trainConfig.epochs);
    const follower = overlap ? evaluateDuringTraining({ heldout, dev, outDir: path.join(runDir, 'eval'), config: config.eval, seed: config.seed }) : undefined;
    if (follower) for (const c of baseCheckpoint ? [baseCheckpoint, ...trained] : trained) follower.add(c);
    const training: TrainRunResult = await timed('train', () =>
      runTraining({
        model,
        train: trainConfig,
        seed: config.seed,
        runDir,
        examples: examples.map((e) => ({ ids: e.ids, lossMask: e.lossMask })),
        trimmedCount: trimmed,
        baseCheckpoint: pretrained?.dir,
        tokenizerJson: tokenizer.toJSON(),
        dataHash: data.hash,
        configHash: trainHash,
        resume: true,
        quiet,
        onCheckpoint: follower ? (c) => follower.add(c) : undefined,
      }).catch(async (err: unknown) => {
        await follower?.stop(); // its thread would otherwise keep the process alive
        throw err;
      }),
    );
    if (follower) {
      // Training is done: the final pass below reuses what was finished, so do not wait for the rest.
      const during = await timed('eval', () => follower.stop());
      durations[EVAL_DURING_TRAINING] = (durations[EVAL_DURING_TRAINING] ?? 0) + during.seconds;
      log(quiet, `evaluated ${during.checkpoints} checkpoint(s) while training (${during.seconds.toFixed(1)} s)${during.error ? `; evaluation during training stopped, the final pass redoes what is missing: ${during.error}` : ''}`);
    }
    if (until < STAGES.indexOf('eval')) return { runDir };

    const trainedCheckpoints = (await listCheckpoints(runDir)).filter((c) => c.epoch >= 1 && c.epoch <= trainConfig.epochs);
    checkpoints = baseCheckpoint ? [baseCheckpoint, ...trainedCheckpoints] : trainedCheckpoints;
    // The base's own loss is on general text, not on responses: its row has no train loss.
    epochRows = () => Promise.all(checkpoints.map(async (c) => ({ epoch: c.epoch, trainLoss: c.epoch === 0 ? null : (await loadCheckpoint(c.dir)).manifest.trainLoss })));
    backend = { training: training.backend, trainTokensPerSec: round(training.tokensPerSec), evaluation: 'onnxruntime-node (cpu)', evalWorkers: config.eval.workers };
  }

  // 3. Pooled evaluation of every checkpoint (and of the base as epoch 0).
  // The queue only changes where tasks run, never a result: it is in no identity or report.
  const queue = config.eval.queue ? { url: config.eval.queue, name: options.queueName, tasksPerJob: config.eval.queueTasksPerJob } : undefined;
  log(quiet, `stage 4/6 evaluate ${checkpoints.length} checkpoints: perplexity on ${heldout.length} held-out, generations on ${dev.length} dev examples${queue ? ` on the queue at ${queueConnection(queue.url).display}` : ''}`);
  const evaluation = await timed('eval', () =>
    runEvaluation({ checkpoints, heldout, dev, outDir: path.join(runDir, 'eval'), config: config.eval, seed: config.seed, quiet, queue, signal: options.signal }),
  );
  throwIfAborted(options.signal);
  const fit = evaluation.heldoutCoverage;
  log(
    quiet,
    `held-out: ${fit.scoredTokens} of ${fit.answerTokens} answer tokens scored (coverage ${fit.coverage.toFixed(3)}) in ${fit.windows} windows of ${fit.window} tokens, stride ${fit.stride}; ` +
      `${fit.promptCut} of ${fit.examples} prompts cut from the left, ${fit.multiWindow} answers in more than one window`,
  );
  if (until < STAGES.indexOf('judge')) return { runDir };

  // 4. Judging every generation (cached on disk, so reruns make no new requests).
  const judge = createJudge(config.judge, { cacheDir: path.join(runDir, 'judge-cache') });
  log(quiet, `stage 5/6 judge ${evaluation.generations.length} generations: ${judge.describe()}`);
  const judgeInputs: JudgeInput[] = evaluation.generations.map((g) => ({
    id: `${g.epoch}:${g.exampleId}:${g.sample}`,
    prompt: g.prompt,
    response: g.response,
    reference: g.reference,
    endedWithEot: g.endedWithEot,
  }));
  const judgments: Judgment[] = await timed('judge', () =>
    judgeAll(judge, judgeInputs, { concurrency: judgeConcurrency(config.judge) }),
  );
  await writeFileAtomic(
    path.join(runDir, 'judgments.jsonl'),
    judgments.map((j, i) => JSON.stringify({ ...judgeInputs[i], score: j.score, valid: j.valid, invalidReason: j.invalidReason, reason: j.reason, subscores: j.subscores, raw: j.raw })).join('\n') + '\n',
  );
  if (until < STAGES.indexOf('report')) return { runDir };
  throwIfAborted(options.signal);

  // 5. Analysis and report.
  log(quiet, `stage 6/6 analysis and report -> ${reportDir}`);
  const input: AnalysisInput = {
    epochs: await epochRows(),
    perplexity: evaluation.perplexity.map((p) => ({ epoch: p.epoch, exampleId: p.exampleId, nll: p.nll, tokens: p.tokens, bytes: p.bytes })),
    quality: qualityRows(evaluation.generations, judgments), // judgeInputs (and so judgments) follow generations' order
    window: config.analysis.window,
    bootstrap: config.analysis.bootstrap,
    confidence: config.analysis.confidence,
    alpha: config.analysis.alpha,
    maxUndefinedShare: config.analysis.maxUndefinedShare,
    seed: config.seed,
    judge: { kind: config.judge.kind, description: judge.describe() },
    data: { train: data.counts.train, heldout: data.counts.heldout, dev: data.counts.dev, sources: describeSources(config) },
    heldoutCoverage: evaluation.heldoutCoverage,
    chatFormat: groupChatFormats(evaluation.chatFormats),
    ...(pretrained ? { pretraining: pretrainingFigures(pretrained) } : {}),
    ...(positionUnit ? { positionUnit } : {}),
    backend,
    durationsSeconds: Object.fromEntries(Object.entries(durations).map(([k, v]) => [k, round(v)])),
  };
  const metrics = await timed('analysis', async () => analyze(input));
  const drilldown = buildDrilldown(dev, evaluation.generations, judgments, judgeInputs);
  const written = await timed('report', () => writeReport(reportDir, metrics, drilldown, { title: `lima-harness: ${config.name}` }));
  return { runDir, reportDir, reportHtml: written.html, metricsFile: written.json };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw Object.assign(new Error('interrupted; everything finished so far is reused by the next run'), { name: 'AbortError' });
}

/** The analysis input's quality rows, judgments[i] judging generations[i]: an invalid judgment's score is null and its reason is kept. */
export function qualityRows(generations: Array<Pick<GenerationResult, 'epoch' | 'exampleId' | 'sample'>>, judgments: Judgment[]): AnalysisInput['quality'] {
  return judgments.map((j, i) => {
    const g = generations[i]!;
    return { epoch: g.epoch, exampleId: g.exampleId, sample: g.sample, score: j.valid ? j.score : null, ...(!j.valid && j.invalidReason ? { invalidReason: j.invalidReason } : {}) };
  });
}

function pretrainingFigures(base: PretrainedBase): NonNullable<AnalysisInput['pretraining']> {
  const r = base.record;
  return {
    hash: r.hash,
    params: r.params,
    documents: r.documents,
    tokens: r.tokens,
    droppedAsHeldoutOrDev: Number((r.provenance as { dropped?: number }).dropped ?? 0),
    steps: r.steps,
    epochs: r.epochs,
    trainLoss: r.trainLoss,
    validationLoss: r.validationLoss,
    seconds: r.seconds,
    tokensPerSec: r.tokensPerSec,
  };
}

/** A checkpoint's path as the report names it: relative to the working directory, absolute when outside it. */
function shownPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel === '' || rel.split(path.sep)[0] === '..' || path.isAbsolute(rel) ? file : rel;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function describeSources(config: ExperimentConfig): Record<string, unknown> {
  const names = (s: ExperimentConfig['data']['train']) => s.map((x) => path.relative(process.cwd(), x.path));
  if (config.data.builtin) {
    // Sets given their own sources replace the builtin's; only those are listed beside it.
    const replaced = (['train', 'heldout', 'dev'] as const).filter((k) => config.data[k].length > 0);
    return { builtin: config.data.builtin, ...Object.fromEntries(replaced.map((k) => [k, names(config.data[k])])) };
  }
  return { train: names(config.data.train), heldout: names(config.data.heldout), dev: names(config.data.dev) };
}

function buildDrilldown(dev: ChatRecord[], generations: GenerationResult[], judgments: Judgment[], inputs: JudgeInput[]): DrilldownExample[] {
  const scoreById = new Map(inputs.map((inp, i) => [inp.id, judgments[i]!.valid ? judgments[i]!.score : null]));
  const reasonById = new Map(inputs.map((inp, i) => [inp.id, judgments[i]!.valid ? undefined : judgments[i]!.invalidReason]));
  const byExample = new Map<string, DrilldownExample>();
  for (const record of dev) {
    const prompt = record.turns.filter((t) => t.role !== 'assistant').map((t) => t.content).join('\n\n');
    const reference = [...record.turns].reverse().find((t) => t.role === 'assistant')?.content ?? '';
    byExample.set(record.id, { exampleId: record.id, prompt, reference, generations: [] });
  }
  for (const g of generations) {
    const id = `${g.epoch}:${g.exampleId}:${g.sample}`;
    const invalidReason = reasonById.get(id);
    byExample.get(g.exampleId)?.generations.push({
      epoch: g.epoch,
      sample: g.sample,
      response: g.response,
      score: scoreById.get(id) ?? null,
      ...(invalidReason ? { invalidReason } : {}),
    });
  }
  for (const ex of byExample.values()) ex.generations.sort((a, b) => a.epoch - b.epoch || a.sample - b.sample);
  return [...byExample.values()];
}
