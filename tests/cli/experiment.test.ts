// The whole pipeline on a tiny study: it writes a complete report, and a run killed with
// SIGKILL in the middle finishes on rerun with the same metrics and without redoing what was done.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'bin/lima-harness.mjs');

const tinyConfig = {
  name: 'tiny',
  seed: 3,
  data: { builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: 48, heldout: 40, dev: 4 }, pretrainTexts: 64 },
  tokenizer: { vocabSize: 300 },
  model: { context: 48, dModel: 16, layers: 1, heads: 2 },
  train: { epochs: 4, batchSize: 16, lrScale: 300, maxLength: 48, backend: 'ort', threads: 1, base: { kind: 'pretrain', epochs: 1, batchSize: 16, lr: 3e-3, maxLength: 48 } },
  eval: { workers: 1, maxLength: 48, generation: { samples: 2, maxNewTokens: 12 } },
  judge: { kind: 'rubric' },
  analysis: { window: [2, 3], bootstrap: 50 },
};

function run(args: string[], cwd: string) {
  return spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, LIMA_QUIET: '1' } });
}

function withoutTimes(metrics: Record<string, unknown>): Record<string, unknown> {
  const { durationsSeconds: _d, backend: _b, ...rest } = metrics;
  return rest;
}

test('a tiny study end to end, then killed mid-training and resumed to the same metrics', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-e2e-'));
  await fs.writeFile(path.join(dir, 'tiny.json'), JSON.stringify(tinyConfig));
  const straight = run(['experiment', '--config', 'tiny.json', '--run-dir', 'run-a', '--out', 'report-a'], dir);
  assert.equal(straight.status, 0, straight.stderr);
  assert.match(straight.stdout, /report: .*report-a\/index\.html/);
  for (const file of ['index.html', 'metrics.json', 'metrics.csv']) await fs.access(path.join(dir, 'report-a', file));
  const metricsA = JSON.parse(await fs.readFile(path.join(dir, 'report-a/metrics.json'), 'utf8'));
  assert.equal(metricsA.epochs.length, 4);
  assert.ok(metricsA.epochs.every((e: { perplexity: number }) => Number.isFinite(e.perplexity) && e.perplexity > 1));
  assert.ok([2, 3].includes(metricsA.selection.epoch));
  // The pretrained base is epoch 0: evaluated, kept out of epochs, its pretraining recorded.
  assert.equal(metricsA.base.epoch, 0);
  assert.ok(Number.isFinite(metricsA.base.perplexity) && metricsA.base.perplexity > 1);
  assert.ok(Number.isFinite(metricsA.pretraining.validationLoss));
  assert.equal(metricsA.pretraining.documents.train + metricsA.pretraining.documents.validation, 64);
  const bases = await fs.readdir(path.join(dir, 'bases'));
  assert.equal(bases.length, 1);
  assert.equal(metricsA.pretraining.hash.slice(0, 16), bases[0]);

  // Kill -9 once the second epoch's checkpoint exists, then run the same command again.
  const child = spawn(process.execPath, [cli, 'experiment', '--config', 'tiny.json', '--run-dir', 'run-b', '--out', 'report-b'], { cwd: dir, env: { ...process.env, LIMA_QUIET: '1' }, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  // Waits up to 5 minutes (a loaded machine); the kill itself is what is tested.
  for (let i = 0; i < 6000; i++) {
    if (await fs.access(path.join(dir, 'run-b/epoch-02/manifest.json')).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await exited;
  const epoch1 = await fs.stat(path.join(dir, 'run-b/epoch-01/weights.bin'));
  const resumed = run(['experiment', '--config', 'tiny.json', '--run-dir', 'run-b', '--out', 'report-b'], dir);
  assert.equal(resumed.status, 0, resumed.stderr);
  const metricsB = JSON.parse(await fs.readFile(path.join(dir, 'report-b/metrics.json'), 'utf8'));
  assert.deepEqual(withoutTimes(metricsB), withoutTimes(metricsA));
  assert.equal((await fs.stat(path.join(dir, 'run-b/epoch-01/weights.bin'))).mtimeMs, epoch1.mtimeMs, 'epoch 1 was not retrained');

  // A finished study reruns without recomputing: the evaluation results are untouched.
  const evalFiles = (await fs.readdir(path.join(dir, 'run-b/eval'))).filter((f) => f.endsWith('.jsonl'));
  assert.ok(evalFiles.length > 0);
  const before = await Promise.all(evalFiles.map((f) => fs.stat(path.join(dir, 'run-b/eval', f)).then((s) => s.mtimeMs)));
  const again = run(['experiment', '--config', 'tiny.json', '--run-dir', 'run-b', '--out', 'report-b'], dir);
  assert.equal(again.status, 0, again.stderr);
  const after = await Promise.all(evalFiles.map((f) => fs.stat(path.join(dir, 'run-b/eval', f)).then((s) => s.mtimeMs)));
  assert.deepEqual(after, before);

  // Run b reused run a's base (same text, model, schedule and seed) rather than pretraining again.
  assert.deepEqual(await fs.readdir(path.join(dir, 'bases')), bases);

  // A checkpoint base fine-tunes with the checkpoint's own tokenizer (vocabSize here differs from it) and is epoch 0.
  const fromCheckpoint = { ...tinyConfig, name: 'from-ckpt', tokenizer: { vocabSize: 280 }, train: { ...tinyConfig.train, epochs: 1, base: { kind: 'checkpoint', path: 'run-a/epoch-04' } }, analysis: { window: [1, 1], bootstrap: 20 } };
  await fs.writeFile(path.join(dir, 'from-ckpt.json'), JSON.stringify(fromCheckpoint));
  const ck = run(['experiment', '--config', 'from-ckpt.json', '--run-dir', 'run-c', '--out', 'report-c'], dir);
  assert.equal(ck.status, 0, ck.stderr);
  const metricsC = JSON.parse(await fs.readFile(path.join(dir, 'report-c/metrics.json'), 'utf8'));
  assert.equal(metricsC.base.perplexity, metricsA.epochs[3].perplexity, 'epoch 0 is run a\'s epoch 4');
  assert.equal(metricsC.pretraining, undefined);

  // Changing what results depend on is refused rather than mixed into the old run.
  await fs.writeFile(path.join(dir, 'tiny.json'), JSON.stringify({ ...tinyConfig, seed: 4 }));
  const changed = run(['experiment', '--config', 'tiny.json', '--run-dir', 'run-b', '--out', 'report-b'], dir);
  assert.equal(changed.status, 1);
  assert.match(changed.stderr, /different config/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('evaluating checkpoints while training gives the same metrics as evaluating after it', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-overlap-'));
  await fs.writeFile(path.join(dir, 'tiny.json'), JSON.stringify(tinyConfig));
  await fs.writeFile(path.join(dir, 'overlap.json'), JSON.stringify({ ...tinyConfig, eval: { ...tinyConfig.eval, overlapTraining: true } }));
  const after = run(['experiment', '--config', 'tiny.json', '--run-dir', 'run-a', '--out', 'report-a'], dir);
  assert.equal(after.status, 0, after.stderr);
  const during = run(['experiment', '--config', 'overlap.json', '--run-dir', 'run-c', '--out', 'report-c'], dir);
  assert.equal(during.status, 0, during.stderr);
  const metricsA = JSON.parse(await fs.readFile(path.join(dir, 'report-a/metrics.json'), 'utf8'));
  const metricsC = JSON.parse(await fs.readFile(path.join(dir, 'report-c/metrics.json'), 'utf8'));
  assert.deepEqual(withoutTimes(metricsC), withoutTimes(metricsA));
  assert.equal(typeof metricsC.durationsSeconds.evalDuringTraining, 'number');
  assert.equal(metricsA.durationsSeconds.evalDuringTraining, undefined);
  // The option is not part of the run's identity: switching it on for an existing run is allowed.
  const switched = run(['experiment', '--config', 'overlap.json', '--run-dir', 'run-a', '--out', 'report-a'], dir);
  assert.equal(switched.status, 0, switched.stderr);
  await fs.rm(dir, { recursive: true, force: true });
});
