// `experiment --watch` on a series a "trainer" (this test) is still writing: checkpoints are
// evaluated as they land, a half-written one (a sharded set with a shard missing) is not read
// until complete, the report refreshes after each, and the watch stops at trainer_state.json's
// max_steps. Ctrl-C exits 130 and a rerun resumes from the caches (--watch-until). A GGUF file
// counted complete that still fails to load is reported, and read again once it changes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeHfGpt2 } from '../../src/checkpoint/index.ts';
import { readSafetensorsDir, writeSafetensorsSharded } from '../../src/checkpoint/safetensors.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { makeTokenizer, randomWeights, tempDir } from '../eval/helpers.ts';
import { tinyLlamaGguf } from '../helpers/gguf-llama.ts';
import { encodeGguf, T } from '../helpers/gguf-writer.ts';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'bin/lima-harness.mjs');
const dir = await tempDir('watch-cli');
after(() => fs.rm(dir, { recursive: true, force: true }));

const tok = makeTokenizer();
const model: ModelConfig = { vocab: tok.vocabSize, context: 32, dModel: 16, layers: 1, heads: 2 };
const MAX_STEPS = 30;

/** An HF checkpoint-<step> folder, built in a staging area (copied in by the test), optionally sharded. */
async function stage(step: number, sharded = false): Promise<string> {
  const out = path.join(dir, 'staging', `checkpoint-${step}`);
  await writeHfGpt2(out, model, randomWeights(model, step, 0.3), { tokenizer: tok.toJSON() });
  if (sharded) {
    const { weights } = await readSafetensorsDir(out);
    await fs.rm(path.join(out, 'model.safetensors'));
    const files = await writeSafetensorsSharded(out, weights, 20_000);
    assert.ok(files.length >= 3, `${files.length - 1} shards`);
  }
  const history = Array.from({ length: step / 10 }, (_, i) => ({ step: (i + 1) * 10, epoch: i + 1, loss: 3 - i / 2 }));
  await fs.writeFile(path.join(out, 'trainer_state.json'), JSON.stringify({ epoch: step / 10, global_step: step, max_steps: MAX_STEPS, log_history: history }));
  return out;
}

async function copyIn(staged: string, runDir: string, skip: (name: string) => boolean = () => false): Promise<void> {
  const target = path.join(runDir, path.basename(staged));
  await fs.mkdir(target, { recursive: true });
  for (const name of (await fs.readdir(staged)).sort()) if (!skip(name)) await fs.copyFile(path.join(staged, name), path.join(target, name));
}

function config(name: string, runDir: string) {
  return {
    name,
    seed: 5,
    data: { builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: 8, heldout: 12, dev: 3 } },
    checkpoints: { dir: runDir, format: 'hf' },
    eval: { workers: 1, maxLength: 32, generation: { samples: 1, maxNewTokens: 4 } },
    judge: { kind: 'rubric' },
    analysis: { window: [1, 3], bootstrap: 20 },
  };
}

function watch(configFile: string, extra: string[] = []): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, 'experiment', '--config', configFile, '--watch', '--watch-interval', '0.25', ...extra], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  return { child, stderr: () => err, exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

async function until<T>(what: string, check: () => Promise<T | undefined>, log: () => string, seconds = 180): Promise<T> {
  for (let i = 0; i < seconds * 20; i++) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; stderr:\n${log()}`);
}

const epochsIn = (name: string) => async (): Promise<number[]> => (JSON.parse(await fs.readFile(path.join(dir, 'reports', name, 'metrics.json'), 'utf8')) as { epochs: Array<{ epoch: number }> }).epochs.map((e) => e.epoch);

test('--watch evaluates checkpoints as they land, not a half-written one, refreshes the report after each and stops at max_steps', async () => {
  const runDir = path.join(dir, 'run');
  await fs.mkdir(runDir, { recursive: true });
  await fs.mkdir(path.join(runDir, 'runs')); // tensorboard's folder: not a checkpoint, never waited for
  await fs.writeFile(path.join(dir, 'series.json'), JSON.stringify(config('watched', runDir)));
  const [s10, s20, s30] = [await stage(10), await stage(20, true), await stage(30)];
  await copyIn(s10, runDir);
  const w = watch('series.json');
  const epochs = epochsIn('watched');
  await until('the first report', async () => ((await epochs()).length === 1 ? true : undefined), w.stderr);
  assert.deepEqual(await epochs(), [1]);

  // checkpoint-20 lands without its last shard: waited for, never read.
  const shards = (await fs.readdir(s20)).filter((n) => /^model-\d+-of-\d+\.safetensors$/.test(n)).sort();
  const lastShard = shards[shards.length - 1]!;
  await copyIn(s20, runDir, (name) => name === lastShard);
  await until('the status naming the missing shard', async () => (w.stderr().includes(`checkpoint-20 (1 of ${shards.length} shards (${lastShard}))`) ? true : undefined), w.stderr);
  await new Promise((r) => setTimeout(r, 1000)); // four more polls
  assert.deepEqual(await epochs(), [1], 'the incomplete checkpoint is not evaluated');
  assert.doesNotMatch(w.stderr(), /error/i);
  await fs.copyFile(path.join(s20, lastShard), path.join(runDir, 'checkpoint-20', lastShard));
  await until('the report over two checkpoints', async () => ((await epochs()).length === 2 ? true : undefined), w.stderr);
  assert.deepEqual(await epochs(), [1, 2]);

  // The trainer's last checkpoint (global_step = max_steps): evaluated, then the watch ends.
  await copyIn(s30, runDir);
  let exited: number | null | undefined;
  void w.exit.then((c) => (exited = c));
  const code = await until('the watch to stop', async () => exited, w.stderr, 240);
  assert.equal(code, 0, w.stderr());
  assert.deepEqual(await epochs(), [1, 2, 3]);
  assert.match(w.stderr(), /stopping: a checkpoint at step 30 \(trainer_state\.json's max_steps\) is evaluated; 3 checkpoints in the report/);
  assert.equal((w.stderr().match(/report refreshed/g) ?? []).length, 3, 'one report per checkpoint');
  // Generations are seeded by the trainer's step, stored with it (it is not the position).
  const gens = (await fs.readFile(path.join(dir, 'checkpoints/watched/eval/generations.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; seedKey: number });
  assert.deepEqual([...new Set(gens.map((g) => `${g.epoch}:${g.seedKey}`))].sort(), ['1:10', '2:20', '3:30']);
});

test('Ctrl-C ends a watch with exit code 130; a rerun resumes from the caches and --watch-until stops it', async () => {
  const runDir = path.join(dir, 'run-int');
  await fs.mkdir(runDir, { recursive: true });
  await copyIn(await stage(10), runDir);
  await fs.writeFile(path.join(dir, 'int.json'), JSON.stringify(config('interrupted', runDir)));
  const w = watch('int.json');
  await until('the first report', async () => ((await epochsIn('interrupted')()).length === 1 ? true : undefined), w.stderr);
  await until('the waiting status', async () => (w.stderr().includes('[watch] 1 evaluated, last checkpoint-10 (step 10 of 30); waiting for the next checkpoint') ? true : undefined), w.stderr);
  w.child.kill('SIGINT');
  assert.equal(await w.exit, 130, w.stderr());
  assert.match(w.stderr(), /watch interrupted after \d+s: 1 checkpoint\(s\) evaluated/);
  const generations = path.join(dir, 'checkpoints/interrupted/eval/generations.jsonl');
  const before = await fs.readFile(generations, 'utf8');

  const again = watch('int.json', ['--watch-until', '10']);
  assert.equal(await again.exit, 0, again.stderr());
  assert.match(again.stderr(), /stopping: a checkpoint at step 10 \(--watch-until\) is evaluated/);
  assert.equal(await fs.readFile(generations, 'utf8'), before, 'nothing generated again');
  assert.deepEqual(await epochsIn('interrupted')(), [1]);
});

test('--watch: a counted GGUF file that still fails to load is reported and read again once it changes; the watch goes on', async () => {
  const runDir = path.join(dir, 'run-gguf');
  await fs.mkdir(runDir, { recursive: true });
  await fs.writeFile(path.join(runDir, 'step-10.gguf'), tinyLlamaGguf(10));
  // Whole by its header (no tensors), stable, but no llama: its reader fails naming it.
  await fs.writeFile(path.join(runDir, 'step-20.gguf'), encodeGguf({ metadata: [['general.architecture', T.STR, 'llama']], tensors: [] }));
  const cfg = { ...config('gguf-retry', runDir), checkpoints: { glob: path.join(runDir, '*.gguf'), format: 'gguf' }, eval: { workers: 1, maxLength: 64, generation: { samples: 1, maxNewTokens: 4 } }, analysis: { window: [10, 20], bootstrap: 20 } };
  await fs.writeFile(path.join(dir, 'gguf-retry.json'), JSON.stringify(cfg));
  const w = watch('gguf-retry.json', ['--watch-until', '20']);
  await until('the failure report', async () => (/step-20\.gguf could not be read; it is read again once its files change: .*step-20\.gguf/.test(w.stderr()) ? true : undefined), w.stderr);
  await until('the status saying it waits for a change', async () => (w.stderr().includes('step-20.gguf (its files to change (reading it failed))') ? true : undefined), w.stderr);
  assert.deepEqual(await epochsIn('gguf-retry')(), [10], 'the first checkpoint is in the report');
  await fs.writeFile(path.join(runDir, 'step-20.tmp'), tinyLlamaGguf(20));
  await fs.rename(path.join(runDir, 'step-20.tmp'), path.join(runDir, 'step-20.gguf'));
  assert.equal(await until('the watch to stop', () => w.exit.then((c) => c ?? -1), w.stderr, 240), 0, w.stderr());
  assert.deepEqual(await epochsIn('gguf-retry')(), [10, 20]);
  assert.equal((w.stderr().match(/could not be read/g) ?? []).length, 1, 'reported once, not at every poll');
});
