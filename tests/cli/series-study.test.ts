// Issue 13's end-to-end check: the CI study (experiments/ci.json), then its 15 epoch
// checkpoints exported with `export --format hf` plus a trainer_state.json each, and a study
// over them with a `checkpoints` section (same data, eval, judge and analysis). Its metrics must
// match the CI study's within experiments/baselines/ci.json's tolerances: epochs.*, correlation
// and selection (the series has no base model, so no base row).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { exportCommand } from '../../src/cli/export-command.ts';
import { listCheckpoints, loadCheckpoint } from '../../src/checkpoint/index.ts';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'bin/lima-harness.mjs');

function run(args: string[], cwd: string): void {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, LIMA_QUIET: '1' } });
  assert.equal(r.status, 0, `lima-harness ${args.join(' ')} failed:\n${r.stderr}`);
}

function at(metrics: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((v, part) => (v as Record<string, unknown> | undefined)?.[part], metrics);
}

test('the CI study read back as an HF checkpoint series gives the same metrics within the baseline tolerances', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-series-study-'));
  try {
    const ci = JSON.parse(await fs.readFile(path.join(root, 'experiments/ci.json'), 'utf8')) as Record<string, unknown>;
    await fs.writeFile(path.join(dir, 'ci.json'), JSON.stringify(ci));
    run(['experiment', '--config', 'ci.json'], dir);

    // Export every epoch as an HF folder with the trainer_state.json a Trainer would write.
    // global_step = the epoch: our own runs seed generations by epoch, a series by step, so
    // this series draws the very samples the CI study drew (a real run's steps would draw others).
    const epochs = await listCheckpoints(path.join(dir, 'checkpoints/ci'));
    assert.equal(epochs.length, 15);
    const history: Array<{ step: number; epoch: number; loss: number }> = [];
    for (const { epoch, dir: ckDir } of epochs) {
      const out = path.join(dir, 'hf-run', `checkpoint-${epoch}`);
      assert.equal(await exportCommand(['--checkpoint', ckDir, '--format', 'hf', '--out', out], () => {}), 0);
      history.push({ step: epoch, epoch, loss: (await loadCheckpoint(ckDir)).manifest.trainLoss });
      await fs.writeFile(path.join(out, 'trainer_state.json'), JSON.stringify({ epoch, global_step: epoch, log_history: history }));
    }
    const { model: _m, train: _t, tokenizer: _k, ...rest } = ci;
    await fs.writeFile(path.join(dir, 'series.json'), JSON.stringify({ ...rest, name: 'ci-hf', checkpoints: { glob: 'hf-run/checkpoint-*', format: 'hf' } }));
    run(['experiment', '--config', 'series.json'], dir);

    const mine = JSON.parse(await fs.readFile(path.join(dir, 'reports/ci/metrics.json'), 'utf8'));
    const theirs = JSON.parse(await fs.readFile(path.join(dir, 'reports/ci-hf/metrics.json'), 'utf8'));
    const baseline = JSON.parse(await fs.readFile(path.join(root, 'experiments/baselines/ci.json'), 'utf8')) as { tolerance: Record<string, number> };
    const keys = Object.keys(baseline.tolerance).filter((k) => /^(epochs|correlation|selection)\./.test(k));
    assert.ok(keys.length > 60, `${keys.length} compared metrics`);
    const off = keys.filter((k) => {
      const a = at(mine, k);
      const b = at(theirs, k);
      return typeof a !== 'number' || typeof b !== 'number' || !(Math.abs(a - b) <= baseline.tolerance[k]!);
    });
    assert.deepEqual(off.map((k) => `${k}: ${at(mine, k)} vs ${at(theirs, k)}`), []);
    // Same weights, same seeds: not merely within tolerance but the same figures.
    assert.deepEqual(theirs.epochs.map((e: { epoch: number; perplexity: number; quality: { mean: number }; trainLoss: number }) => [e.epoch, e.perplexity, e.quality.mean, e.trainLoss]),
      mine.epochs.map((e: { epoch: number; perplexity: number; quality: { mean: number }; trainLoss: number }) => [e.epoch, e.perplexity, e.quality.mean, e.trainLoss]));
    assert.equal(theirs.selection.epoch, mine.selection.epoch);
    console.log(`series study: selection epoch ${theirs.selection.epoch}, pearson r ${theirs.correlation.pearson.r} (CI study ${mine.correlation.pearson.r}), epoch 1 perplexity ${theirs.epochs[0].perplexity}`);
    assert.equal(theirs.base, undefined, 'a series without a base has no base row');
    assert.ok(mine.base, 'the CI study has its base row');
    // The trainer's logged losses, per checkpoint, in metrics.json and in a chart of their own.
    assert.deepEqual(theirs.epochs[4].trainer, { loss: mine.epochs[4].trainLoss, evalLoss: null, step: 5 });
    await fs.access(path.join(dir, 'reports/ci-hf/chart-trainer.svg'));
    assert.match(theirs.backend.training, /imported checkpoint series \(hf\)/);
    // What to ship, named: each epoch's folder relative to the working directory, the axis called
    // epoch (trainer_state.json has epochs), in metrics.json, metrics.csv and the headline.
    assert.deepEqual(theirs.epochs.map((e: { checkpoint: string }) => e.checkpoint), theirs.epochs.map((e: { epoch: number }) => `hf-run/checkpoint-${e.epoch}`));
    assert.equal(theirs.positionUnit, 'epoch');
    assert.equal(mine.epochs[0].checkpoint, undefined, 'our own runs name no checkpoint');
    const html = await fs.readFile(path.join(dir, 'reports/ci-hf/index.html'), 'utf8');
    assert.ok(html.includes(`Ship <strong><code>hf-run/checkpoint-${theirs.selection.epoch}</code></strong> (epoch ${theirs.selection.epoch})`));
    assert.match(await fs.readFile(path.join(dir, 'reports/ci-hf/metrics.csv'), 'utf8'), /,hf-run\/checkpoint-5,/);
    // eval_loss was never logged: no trainer eval_loss rule.
    assert.equal(theirs.selection.qualityLostByTrainerEvalLoss, undefined);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
