// The metrics regression check: pass, fail beyond tolerance, missing metric, baseline writing,
// exit codes and the printed table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { regressCommand } from '../../src/cli/regress-command.ts';
import { compareMetrics, lookupPath, parseBaseline } from '../../src/analysis/regress.ts';
import { analyze } from '../../src/analysis/index.ts';
import { syntheticInput, withBase } from './fixtures.ts';

function capture() {
  const lines: string[] = [];
  const errors: string[] = [];
  return { out: { log: (t: string) => lines.push(t), error: (t: string) => errors.push(t) }, lines, errors };
}

async function setup() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-regress-'));
  const metrics = analyze(syntheticInput({ epochs: 6, heldout: 50, dev: 10, bootstrap: 30 }));
  const metricsFile = path.join(dir, 'metrics.json');
  await fs.writeFile(metricsFile, JSON.stringify(metrics));
  return { dir, metrics, metricsFile };
}

test('lookupPath walks objects and array indices', () => {
  const m = { epochs: [{ epoch: 1, quality: { mean: 3 } }], selection: { stability: { '7': 0.5 } } };
  assert.equal(lookupPath(m, 'epochs.0.quality.mean'), 3);
  assert.equal(lookupPath(m, 'selection.stability.7'), 0.5);
  assert.equal(lookupPath(m, 'epochs.1.epoch'), undefined);
  assert.equal(lookupPath(m, 'epochs.x'), undefined);
});

test('passes within tolerance and prints the table', async () => {
  const { dir, metrics, metricsFile } = await setup();
  const baselineFile = path.join(dir, 'baseline.json');
  const p = metrics.epochs[2]!.perplexity!;
  await fs.writeFile(
    baselineFile,
    JSON.stringify({
      metrics: { 'selection.epoch': metrics.selection.epoch, 'epochs.2.perplexity': p + 0.05, 'correlation.pearson.r': metrics.correlation.pearson.r },
      tolerance: { 'epochs.2.perplexity': 0.1, 'correlation.pearson.r': 0.01 },
    }),
  );
  const io = capture();
  assert.equal(await regressCommand([metricsFile, baselineFile], io.out), 0);
  const table = io.lines.join('\n');
  assert.match(table, /^metric\s+baseline\s+now\s+difference\s+tolerance\s+status/);
  assert.match(table, /epochs\.2\.perplexity\s+\S+\s+\S+\s+-0\.05\s+0\.1\s+ok/);
  assert.match(table, /all 3 metrics within tolerance/);
});

test('fails beyond tolerance or when a metric is missing, and says which', async () => {
  const { dir, metrics, metricsFile } = await setup();
  const baselineFile = path.join(dir, 'baseline.json');
  await fs.writeFile(
    baselineFile,
    JSON.stringify({
      metrics: {
        'selection.epoch': (metrics.selection.epoch ?? 0) + 1,
        'epochs.0.quality.mean': metrics.epochs[0]!.quality.mean! + 0.3,
        'epochs.9.perplexity': 10,
        'judge.kind': 'rubric',
      },
      tolerance: { 'epochs.0.quality.mean': 0.25 },
    }),
  );
  const io = capture();
  assert.equal(await regressCommand([metricsFile, baselineFile], io.out), 1);
  const table = io.lines.join('\n');
  assert.match(table, /selection\.epoch\s+\d+\s+\d+\s+-1\s+0\s+FAIL/);
  assert.match(table, /epochs\.0\.quality\.mean\s+\S+\s+\S+\s+-0\.3\s+0\.25\s+FAIL/);
  assert.match(table, /epochs\.9\.perplexity\s+10\s+\(missing\)\s+0\s+MISSING/);
  assert.match(table, /judge\.kind\s+"rubric"\s+"rubric"\s+0\s+ok/);
  assert.match(io.errors.join('\n'), /3 of 4 metrics moved beyond tolerance or are missing/);
});

test('--write-baseline creates a baseline the same metrics pass', async () => {
  const { dir, metrics, metricsFile } = await setup();
  const baselineFile = path.join(dir, 'written.json');
  const io = capture();
  assert.equal(await regressCommand(['--write-baseline', metricsFile, baselineFile], io.out), 0);
  const baseline = parseBaseline(JSON.parse(await fs.readFile(baselineFile, 'utf8')), baselineFile);
  assert.equal(baseline.metrics['selection.epoch'], metrics.selection.epoch);
  assert.equal(baseline.tolerance['selection.epoch'], 0);
  assert.equal(baseline.metrics['epochs.5.epoch'], 6);
  assert.ok(baseline.tolerance['epochs.0.perplexity']! > 0);
  assert.ok(compareMetrics(metrics, baseline).every((r) => r.status === 'ok'));
  assert.equal(await regressCommand([metricsFile, baselineFile], capture().out), 0);
  // Moving perplexity by 10% breaks the 2% default tolerance.
  const moved = structuredClone(metrics);
  moved.epochs[1]!.perplexity! *= 1.1;
  const rows = compareMetrics(moved, baseline);
  assert.deepEqual(rows.filter((r) => r.status !== 'ok').map((r) => r.metric), ['epochs.1.perplexity']);
});

test('every path the committed CI baseline pins still resolves to a value; the new fields it lacks do not fail it', async () => {
  const file = path.resolve(import.meta.dirname, '../../experiments/baselines/ci.json');
  const baseline = parseBaseline(JSON.parse(await fs.readFile(file, 'utf8')), file);
  const epochs = Object.keys(baseline.metrics).filter((k) => /^epochs\.\d+\.epoch$/.test(k)).length;
  // The pipeline always passes the held-out coverage in; the synthetic input adds it here.
  const heldoutCoverage = { examples: 50, answerTokens: 900, scoredTokens: 900, coverage: 1, promptCut: 2, multiWindow: 0, windows: 50, window: 96, stride: 95 };
  // The CI study has a pretrained base (epoch 0), so the synthetic input has one too.
  const metrics = analyze({ ...withBase(syntheticInput({ epochs, heldout: 50, dev: 10, bootstrap: 30 })), heldoutCoverage });
  for (const metric of Object.keys(baseline.metrics)) {
    const value = lookupPath(metrics, metric);
    assert.ok(value === null || ['number', 'string', 'boolean'].includes(typeof value), `${metric} resolves to ${JSON.stringify(value)}`);
  }
  // The same metrics as their own baseline (only the pinned paths, none of the added fields) pass.
  const own = { ...baseline, metrics: Object.fromEntries(Object.keys(baseline.metrics).map((k) => [k, lookupPath(metrics, k) as number | null])) };
  assert.ok(compareMetrics(metrics, own).every((r) => r.status === 'ok'));
  assert.ok(lookupPath(metrics, 'correlation.pearson.intervalUnreliable') === false, 'the new fields are there');
});

test('usage errors and bad baselines exit 2 with a message naming the file', async () => {
  const { dir, metricsFile } = await setup();
  const io = capture();
  assert.equal(await regressCommand([metricsFile], io.out), 2);
  assert.match(io.errors.join('\n'), /expected METRICS\.json and BASELINE\.json/);
  const help = capture();
  assert.equal(await regressCommand(['--help'], help.out), 0);
  assert.match(help.lines.join('\n'), /--write-baseline/);
  const typo = path.join(dir, 'typo.json');
  await fs.writeFile(typo, JSON.stringify({ metrics: { 'selection.epoch': 3 }, tolerance: { 'selection.epoc': 1 } }));
  const bad = capture();
  assert.equal(await regressCommand([metricsFile, typo], bad.out), 2);
  assert.match(bad.errors.join('\n'), /typo\.json: tolerance\."selection\.epoc": no such path/);
  const missing = capture();
  assert.equal(await regressCommand([metricsFile, path.join(dir, 'nope.json')], missing.out), 2);
  assert.match(missing.errors.join('\n'), /nope\.json: cannot read \(ENOENT\)/);
});

test('metrics and baseline files starting with a UTF-8 byte order mark read like any other', async () => {
  const { dir, metrics, metricsFile } = await setup();
  await fs.writeFile(metricsFile, '\uFEFF' + JSON.stringify(metrics));
  const baselineFile = path.join(dir, 'baseline.json');
  await fs.writeFile(baselineFile, '\uFEFF' + JSON.stringify({ metrics: { 'selection.epoch': metrics.selection.epoch }, tolerance: {} }, null, 2));
  const io = capture();
  assert.equal(await regressCommand([metricsFile, baselineFile], io.out), 0, io.errors.join('\n'));
  assert.match(io.lines.join('\n'), /all 1 metrics within tolerance/);
});

test('base paths: lookupPath and compareMetrics resolve base.*; createBaseline pins them only when there is a base', async () => {
  const { createBaseline } = await import('../../src/analysis/regress.ts');
  const { withBase } = await import('./fixtures.ts');
  const input = syntheticInput({ epochs: 6, heldout: 50, dev: 10, bootstrap: 30 });
  const m = analyze(withBase(input, { trainLoss: 6.5 }));
  assert.equal(lookupPath(m, 'base.perplexity'), m.base!.perplexity);
  assert.equal(lookupPath(m, 'base.quality.mean'), m.base!.quality.mean);
  assert.equal(lookupPath(m, 'base.change.quality.mean'), m.base!.change!.quality.mean);
  assert.equal(lookupPath(m, 'base.change.perplexityRatio.value'), m.base!.change!.perplexityRatio.value);
  assert.equal(lookupPath(m, 'base.reference'), true);
  const baseline = parseBaseline(
    { metrics: { 'base.perplexity': m.base!.perplexity! + 0.1, 'base.quality.mean': m.base!.quality.mean, 'base.change.epoch': m.selection.epoch }, tolerance: { 'base.perplexity': 0.2 } },
    'b.json',
  );
  assert.deepEqual(compareMetrics(m, baseline).map((r) => r.status), ['ok', 'ok', 'ok']);
  // The same baseline against a study without a base: every base path is MISSING, so it fails loudly.
  const plain = analyze(input);
  assert.deepEqual(compareMetrics(plain, baseline).map((r) => r.status), ['MISSING', 'MISSING', 'MISSING']);
  // createBaseline: base paths with a base, none without, and the epochs' paths the same either way.
  const withB = createBaseline(m);
  assert.equal(withB.metrics['base.epoch'], 0);
  assert.equal(withB.metrics['base.perplexity'], m.base!.perplexity);
  assert.equal(withB.metrics['base.quality.mean'], m.base!.quality.mean);
  const without = createBaseline(plain);
  assert.deepEqual(Object.keys(without.metrics).filter((k) => k.startsWith('base.')), []);
  assert.deepEqual(Object.keys(withB.metrics).filter((k) => !k.startsWith('base.')), Object.keys(without.metrics));
  assert.deepEqual(compareMetrics(m, without).filter((r) => r.status !== 'ok'), []);
});
