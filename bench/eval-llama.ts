// Evaluation at scale on an HF-layout Llama of ~34M parameters (issue 13, "Scale, measured"):
//
//   node --import tsx bench/eval-llama.ts [--quick]            (part of `npm run bench -- eval`)
//   node --import tsx bench/eval-llama.ts --series [--quick]   (`npm run bench -- eval-series`)
//
// Default: one checkpoint (TinyLlama's shape scaled down, random seeded weights) written with
// writeHfLlama as bf16 safetensors, then, in a fresh child process so its peak RSS is the
// measurement's own: load time in parts (loadAnyCheckpoint = read + bf16 decode + transpose +
// content hash; ONNX export; session create), scoring tokens/s through the real pool path
// (piscina + src/eval/worker.ts) with 1 and 2 workers of 1 thread, and generation tokens/s with
// the KV cache (near-greedy and with LIMA's sampling), with the peak RSS after each stage.
//
// --series: 15 such checkpoints (different seeds) as checkpoint-<step>/ folders, evaluated by
// runEvaluation exactly as `experiment` does for a `checkpoints` series (listSeries, then the
// eval config's 2 workers), once with the default checkpoint window (workers + 1) and once with
// the window at Infinity (every task submitted at once), each in its own child process: peak RSS
// and wall time of each. --quick: 5 checkpoints and fewer examples (for development only).
//
// Peak RSS is process.resourceUsage().maxRSS: piscina workers are threads of the same process,
// so it covers them. Last stdout line: one JSON object with every figure.
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { countParams, type ModelConfig } from '../src/model/config.ts';
import { exportOnnxBytes } from '../src/model/onnx-export.ts';
import { loadAnyCheckpoint, listSeries, readSafetensorsDir, weightsHash, writeHfLlama } from '../src/checkpoint/index.ts';
import { DecoderSession } from '../src/eval/session.ts';
import { generateIds } from '../src/eval/generate.ts';
import { defaultEvalConfig, defaultGenerationConfig, type GenerationConfig } from '../src/eval/config.ts';
import { runEvaluation } from '../src/eval/index.ts';
import type { EvalTaskResult, PerplexityTask } from '../src/eval/tasks.ts';
import type { ScoringExample } from '../src/eval/scoring.ts';
import type { ChatRecord } from '../src/data/types.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import { mulberry32 } from '../src/util/rng.ts';
import { makeRecords } from '../tests/eval/helpers.ts';
import { randomLlamaWeights } from '../tests/model/llama-fixtures.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argValue = (flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
};
const here = fileURLToPath(import.meta.url);
const log = (msg: string): void => console.log(msg);

/**
 * TinyLlama-1.1B's shape (vocab 32000, GQA 2:1, SwiGLU at ~2.7x d, tied here) scaled down to
 * ~34M parameters: 16.4M of them the tied embedding / output head, 17.4M in 6 layers.
 */
export const LLAMA_30M: ModelConfig = {
  arch: 'llama',
  vocab: 32000,
  context: 2048,
  dModel: 512,
  layers: 6,
  heads: 8,
  kvHeads: 4,
  ffnHidden: 1376,
  ropeTheta: 10000,
  normEps: 1e-5,
  tiedEmbeddings: true,
};
/** Weight scale: N(0, 0.02^2), transformers' initializer_range; RMSNorm gains around 1. */
const INIT_SCALE = 0.02;
const BATCH = 4;
const SEQ = 256;
const PROMPT = 128;
const NEW_TOKENS = 64;

/** Peak RSS so far in MiB (kilobytes from resourceUsage; the whole process, pool threads included). */
const peakMiB = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
const currentMiB = (): number => Math.round(process.memoryUsage.rss() / 2 ** 20);

async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; seconds: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - start) / 1000 };
}

/**
 * A word-level tokenizer.json with exactly LLAMA_30M.vocab ids, so every id the random model
 * samples decodes: <unk> 0, <s> 1, </s> 2 (TinyLlama's special ids), the words and punctuation of
 * the test records and of the plain chat template (split as the Whitespace pre-tokenizer splits),
 * then filler words up to the vocabulary size. It goes through @huggingface/tokenizers like any
 * foreign tokenizer (src/eval/eval-tokenizer.ts); the bench measures the model, not tokenization.
 */
export function benchTokenizer(): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const specials = ['<unk>', '<s>', '</s>'];
  const vocab: Record<string, number> = {};
  let size = 0;
  const add = (w: string): void => {
    if (vocab[w] === undefined) vocab[w] = size++;
  };
  specials.forEach(add);
  const texts = ['### Instruction:\n### Response:\n', ...makeRecords('vocab', 400, 7).flatMap((r) => r.turns.map((t) => t.content))];
  for (const text of texts) for (const w of text.match(/\w+|[^\w\s]+/g) ?? []) add(w);
  while (size < LLAMA_30M.vocab) add(`w${size}`);
  const tokenizer = {
    version: '1.0',
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
  };
  return { tokenizer, tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true } };
}

/** Writes one bf16 HF folder of LLAMA_30M with weights from `seed` and benchTokenizer's files. */
async function writeLlamaCheckpoint(dir: string, seed: number, tok: ReturnType<typeof benchTokenizer>): Promise<void> {
  const weights = randomLlamaWeights(LLAMA_30M, seed, INIT_SCALE);
  await writeHfLlama(dir, LLAMA_30M, weights, { ...tok, dtype: 'BF16', tokens: { bos: 1, eos: 2 } });
}

/** Runs this script as a child with `childArgs`; its stdout lines are passed through; returns its last line parsed. */
function runChild(childArgs: string[]): Record<string, unknown> {
  const started = performance.now();
  const res = spawnSync(process.execPath, ['--import', 'tsx', here, ...childArgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 2 ** 20 });
  const lines = res.stdout.trim().split('\n');
  for (const line of lines.slice(0, -1)) log(`  ${line}`);
  log(`  (child process ${childArgs[0]}: ${((performance.now() - started) / 1000).toFixed(1)} s wall, startup and exit included)`);
  if (res.status !== 0) throw new Error(`bench child ${childArgs.join(' ')} failed with exit code ${res.status}: ${lines.slice(-5).join('\n')}`);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

function tokenRows(seed: number, rows: number, width: number): number[][] {
  const rng = mulberry32(seed);
  return Array.from({ length: rows }, () => Array.from({ length: width }, () => Math.floor(rng() * LLAMA_30M.vocab)));
}

// ---- one checkpoint: load, scoring, generation ----------------------------------------------

async function poolScoring(onnxPath: string, workers: number, budgetSeconds: number): Promise<{ tokensPerSec: number; tasks: number; peakMiB: number }> {
  const pool = new Piscina({ filename: new URL('../src/eval/worker.mjs', import.meta.url).href, minThreads: workers, maxThreads: workers });
  const examples: ScoringExample[] = tokenRows(1, BATCH, SEQ).map((ids, i) => ({ id: `b${i}`, ids, lossMask: ids.map((_, t) => (t === 0 ? 0 : 1)), bytes: ids.length }));
  const task: PerplexityTask = { kind: 'perplexity', onnxPath, model: LLAMA_30M, threads: 1, examples };
  // Warm-up: one task per worker (each loads tsx, onnxruntime and its session).
  const warm = (await Promise.all(Array.from({ length: workers }, () => pool.run(task)))) as EvalTaskResult[];
  if (warm.some((r) => r.kind !== 'perplexity')) throw new Error('pool returned a non-perplexity result');
  const start = performance.now();
  const deadline = start + budgetSeconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < deadline) {
        await pool.run(task);
        done++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  await pool.destroy();
  return { tokensPerSec: (done * BATCH * (SEQ - 1)) / elapsed, tasks: done, peakMiB: peakMiB() };
}

async function generationRate(session: DecoderSession, cfg: GenerationConfig, runs: number): Promise<number> {
  const prompt = tokenRows(2, 1, PROMPT)[0]!;
  await generateIds(session, prompt, cfg, { seed: 1, eot: -1 }); // warm-up
  let tokens = 0;
  const start = performance.now();
  for (let r = 0; r < runs; r++) tokens += (await generateIds(session, prompt, cfg, { seed: 1 + r, eot: -1 })).newTokens;
  return tokens / ((performance.now() - start) / 1000);
}

async function measureOne(dir: string, writeSeconds: number): Promise<void> {
  const budget = quick ? 4 : 15;
  const params = countParams(LLAMA_30M);
  const diskBytes = (await fs.stat(path.join(dir, 'model.safetensors'))).size;
  const baseline = peakMiB();

  // Load, in parts. loadAnyCheckpoint is the evaluation's call; decode and hash are timed again
  // on their own to split it (the file is in the page cache either way: it was just written).
  const load = await timed(() => loadAnyCheckpoint(dir));
  const ck = load.value;
  const peakAfterLoad = peakMiB();
  const decode = await timed(async () => (await readSafetensorsDir(dir)).weights.size);
  const hash = await timed(() => weightsHash(ck.model, ck.weights));
  if (hash.value !== ck.hash) throw new Error('weightsHash differs from the loaded checkpoint hash');
  const onnx = await timed(() => exportOnnxBytes(ck.model, ck.weights));
  const onnxPath = path.join(dir, 'model.onnx');
  const onnxWrite = await timed(() => writeFileAtomic(onnxPath, onnx.value));
  const onnxBytes = onnx.value.byteLength;
  const session = await timed(() => DecoderSession.create(onnxPath, ck.model, { threads: 1 }));
  const peakAfterSession = peakMiB();
  log(
    `load ${load.seconds.toFixed(2)} s (loadAnyCheckpoint: read + bf16 decode ${decode.seconds.toFixed(2)} s, content hash ${hash.seconds.toFixed(2)} s, the rest config/transpose), ` +
      `ONNX export ${onnx.seconds.toFixed(2)} s + write ${onnxWrite.seconds.toFixed(2)} s (${(onnxBytes / 2 ** 20).toFixed(0)} MiB float32), session create ${session.seconds.toFixed(2)} s; ` +
      `peak RSS ${baseline} MiB at start, ${peakAfterLoad} after load, ${peakAfterSession} after export + session`,
  );

  const cached = { ...defaultGenerationConfig, maxNewTokens: NEW_TOKENS };
  const greedy = { ...cached, temperature: 1e-3, topP: 1e-6, repetitionPenalty: 1 };
  const runs = quick ? 2 : 5;
  const genGreedy = await generationRate(session.value, greedy, runs);
  const genLima = await generationRate(session.value, cached, runs);
  await session.value.release();
  log(`generation (1 thread, KV cache, prompt ${PROMPT}, ${NEW_TOKENS} new tokens): ${genGreedy.toFixed(1)} tokens/s near-greedy (temperature 1e-3, top-p 1e-6), ${genLima.toFixed(1)} with LIMA sampling (p 0.9, T 0.7, penalty 1.2)`);

  const one = await poolScoring(onnxPath, 1, budget);
  const two = await poolScoring(onnxPath, 2, budget);
  const gflops = (t: number): number => (2 * params * t) / 1e9;
  log(
    `scoring (pool, 1 thread per worker, batch ${BATCH} x ${SEQ}): 1 worker ${one.tokensPerSec.toFixed(0)} tokens/s (${gflops(one.tokensPerSec).toFixed(1)} GFLOP/s, ${one.tasks} batches), ` +
      `2 workers ${two.tokensPerSec.toFixed(0)} tokens/s (${two.tasks} batches), scaling ${(two.tokensPerSec / one.tokensPerSec).toFixed(2)}x; peak RSS ${one.peakMiB} MiB after 1 worker, ${two.peakMiB} after 2`,
  );
  console.log(
    JSON.stringify({
      bench: 'eval-llama',
      quick,
      model: LLAMA_30M,
      params,
      safetensorsBytes: diskBytes,
      onnxBytes,
      writeSeconds: +writeSeconds.toFixed(2),
      loadSeconds: +load.seconds.toFixed(3),
      decodeSeconds: +decode.seconds.toFixed(3),
      hashSeconds: +hash.seconds.toFixed(3),
      onnxExportSeconds: +onnx.seconds.toFixed(3),
      onnxWriteSeconds: +onnxWrite.seconds.toFixed(3),
      sessionCreateSeconds: +session.seconds.toFixed(3),
      peakRssMiBAfterLoad: peakAfterLoad,
      peakRssMiBAfterSession: peakAfterSession,
      peakRssMiB: peakMiB(),
      rssMiBAtEnd: currentMiB(),
      scoringTokensPerSec: Math.round(one.tokensPerSec),
      scoringTokensPerSec2Workers: Math.round(two.tokensPerSec),
      scaling2Workers: +(two.tokensPerSec / one.tokensPerSec).toFixed(3),
      scoringGflops: +gflops(one.tokensPerSec).toFixed(2),
      scoringBatch: [BATCH, SEQ],
      generationTokensPerSec: +genGreedy.toFixed(1),
      generationLimaTokensPerSec: +genLima.toFixed(1),
      generationPrompt: PROMPT,
      generationNewTokens: NEW_TOKENS,
      loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    }),
  );
}

// ---- a series of checkpoints through runEvaluation ------------------------------------------

const SERIES_SEED = 11;

function seriesSizes(): { checkpoints: number; heldout: number; dev: number; newTokens: number } {
  return quick ? { checkpoints: 5, heldout: 12, dev: 2, newTokens: 8 } : { checkpoints: 15, heldout: 40, dev: 4, newTokens: 16 };
}

/** Held-out records with answers of ~60-250 words (several helper answers joined), and dev prompts. */
function seriesRecords(): { heldout: ChatRecord[]; dev: ChatRecord[] } {
  const sizes = seriesSizes();
  const pieces = makeRecords('piece', sizes.heldout * 12, SERIES_SEED);
  const rng = mulberry32(SERIES_SEED);
  let next = 0;
  const heldout = Array.from({ length: sizes.heldout }, (_, i): ChatRecord => {
    const n = 4 + Math.floor(rng() * 8);
    const answer = pieces.slice(next, next + n).map((r) => r.turns[1]!.content).join(' ');
    const question = pieces[next]!.turns[0]!.content;
    next += n;
    return { id: `heldout-${String(i).padStart(3, '0')}`, source: 'bench', turns: [{ role: 'user', content: question }, { role: 'assistant', content: answer }] };
  });
  return { heldout, dev: makeRecords('dev', sizes.dev, SERIES_SEED + 1) };
}

async function measureSeries(seriesDir: string, windowArg: string): Promise<void> {
  const window = windowArg === 'inf' ? Infinity : windowArg === 'default' ? undefined : Number(windowArg);
  const sizes = seriesSizes();
  const { heldout, dev } = seriesRecords();
  const outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-bench-series-out-'));
  // Sample the current RSS too, to show when the peak happens (export phase vs pool phase).
  const samples: Array<[number, number]> = [];
  const start = performance.now();
  const timer = setInterval(() => samples.push([+((performance.now() - start) / 1000).toFixed(1), currentMiB()]), 1000);
  try {
    // The same calls `experiment` makes for a `checkpoints` series (src/cli/experiment.ts).
    const series = await listSeries({ dir: seriesDir, format: 'hf' }, 'checkpoints');
    const checkpoints = series.map((c) => ({ epoch: c.position, dir: c.dir, seedKey: c.seedKey }));
    const config = { ...defaultEvalConfig, workers: 2, generation: { ...defaultGenerationConfig, maxNewTokens: sizes.newTokens } };
    const result = await runEvaluation({ checkpoints, heldout, dev, outDir, config, seed: 1, quiet: true, ...(window === undefined ? {} : { window }) });
    const seconds = (performance.now() - start) / 1000;
    clearInterval(timer);
    const windows = result.heldoutCoverage;
    const scoredTokens = result.perplexity.reduce((n, r) => n + r.tokens, 0);
    console.log(
      JSON.stringify({
        window: window === undefined ? 'default (workers + 1 = 3)' : String(window),
        checkpoints: checkpoints.length,
        workers: result.workers,
        seconds: +seconds.toFixed(1),
        peakRssMiB: peakMiB(),
        rssSamplesMiB: samples.filter((_, i) => i % 5 === 4),
        computed: result.computed,
        scoredTokens,
        heldoutCoverage: windows,
      }),
    );
  } finally {
    clearInterval(timer);
    await fs.rm(outDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const measureDir = argValue('--measure');
  if (measureDir) return measureOne(measureDir, Number(argValue('--write-seconds') ?? NaN));
  const seriesChild = argValue('--series-child');
  if (seriesChild) return measureSeries(seriesChild, argValue('--window') ?? 'default');

  const tokenizer = benchTokenizer();
  const params = countParams(LLAMA_30M);
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-bench-llama-'));
  try {
    log(`llama ${JSON.stringify(LLAMA_30M)}: ${params} parameters (${(params / 1e6).toFixed(1)}M), bf16 HF folder(s) under ${root}; ${os.availableParallelism()} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    if (!args.includes('--series')) {
      const dir = path.join(root, 'checkpoint');
      const write = await timed(() => writeLlamaCheckpoint(dir, 7, tokenizer));
      log(`wrote ${dir} in ${write.seconds.toFixed(1)} s (random weights + writeHfLlama bf16)`);
      const res = runChild(['--measure', dir, '--write-seconds', String(write.seconds), ...(quick ? ['--quick'] : [])]);
      console.log(JSON.stringify(res));
      return;
    }
    const sizes = seriesSizes();
    const write = await timed(async () => {
      for (let i = 1; i <= sizes.checkpoints; i++) await writeLlamaCheckpoint(path.join(root, `checkpoint-${i * 100}`), 1000 + i, tokenizer);
    });
    const du = (await Promise.all(Array.from({ length: sizes.checkpoints }, (_, i) => fs.stat(path.join(root, `checkpoint-${(i + 1) * 100}`, 'model.safetensors'))))).reduce((n, s) => n + s.size, 0);
    log(`series: ${sizes.checkpoints} checkpoints (${(du / 2 ** 20).toFixed(0)} MiB of bf16 safetensors) written in ${write.seconds.toFixed(1)} s; ${sizes.heldout} held-out examples, ${sizes.dev} dev prompts x ${sizes.newTokens} new tokens, eval workers 2`);
    const quickArgs = quick ? ['--quick'] : [];
    const bounded = runChild(['--series-child', root, '--window', 'default', ...quickArgs]);
    log(`window workers + 1: ${bounded.seconds} s, peak RSS ${bounded.peakRssMiB} MiB`);
    const unbounded = runChild(['--series-child', root, '--window', 'inf', ...quickArgs]);
    log(`window Infinity: ${unbounded.seconds} s, peak RSS ${unbounded.peakRssMiB} MiB`);
    console.log(
      JSON.stringify({
        bench: 'eval-series',
        quick,
        params,
        checkpoints: sizes.checkpoints,
        heldout: sizes.heldout,
        dev: sizes.dev,
        newTokens: sizes.newTokens,
        safetensorsMiB: Math.round(du / 2 ** 20),
        writeSeconds: +write.seconds.toFixed(1),
        peakRssMiB: bounded.peakRssMiB,
        seconds: bounded.seconds,
        peakRssMiBWindowInfinity: unbounded.peakRssMiB,
        secondsWindowInfinity: unbounded.seconds,
        bounded,
        unbounded,
        loadavg: os.loadavg().map((x) => +x.toFixed(2)),
      }),
    );
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

await main();
