// An imported checkpoint series (issue 13): positions are epochs from trainer_state.json,
// fractional when the trainer saved by steps. Analysis, selection window, CSV and charts take
// them as they are; the trainer's logged losses go into metrics.json and a chart of their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { analyze } from '../../src/analysis/index.ts';
import type { AnalysisInput } from '../../src/analysis/types.ts';
import { buildCharts, compileChart, writeReport } from '../../src/report/index.ts';
import { syntheticDrilldown, syntheticInput } from '../analysis/fixtures.ts';

/** The synthetic study with epoch e moved to position e / 2 (0.5, 1, 1.5, ...), every row alike. */
function halfEpochs(input: AnalysisInput): AnalysisInput {
  const half = <T extends { epoch: number }>(r: T): T => ({ ...r, epoch: r.epoch / 2 });
  return {
    ...input,
    epochs: input.epochs.map((r, i) => ({ ...half(r), trainer: { loss: i === 0 ? null : 3 - 0.1 * i, evalLoss: 3.2 - 0.05 * i, step: 50 * (i + 1) } })),
    perplexity: input.perplexity.map(half),
    quality: input.quality.map(half),
    window: [2.5, 5],
  };
}

test('fractional positions: selection window, trainer logs in metrics, CSV and charts', async () => {
  const base = syntheticInput({ epochs: 12, heldout: 40, dev: 10, bootstrap: 40 });
  const whole = analyze(base);
  const input = halfEpochs(base);
  const m = analyze(input);
  assert.deepEqual(m.epochs.map((e) => e.epoch), whole.epochs.map((e) => e.epoch / 2));
  // Same figures as the whole-epoch study with window [5, 10]: the positions only relabel it.
  assert.equal(m.selection.epoch, whole.selection.epoch! / 2);
  assert.ok(m.selection.epoch! >= 2.5 && m.selection.epoch! <= 5);
  assert.deepEqual(m.epochs.map((e) => e.perplexity), whole.epochs.map((e) => e.perplexity));
  assert.deepEqual(m.correlation.pearson.r, whole.correlation.pearson.r);
  assert.ok(Object.keys(m.selection.stability).some((k) => k.includes('.')), 'stability keyed by fractional positions');
  assert.deepEqual(m.epochs[0]!.trainer, { loss: null, evalLoss: 3.2, step: 50 });
  assert.deepEqual(m.epochs[3]!.trainer, input.epochs[3]!.trainer);
  assert.equal(m.epochs[3]!.trainer!.step, 200);
  assert.equal(whole.epochs[0]!.trainer, undefined, 'our own runs: no trainer key');

  const charts = buildCharts(m, syntheticDrilldown(input, 3));
  assert.deepEqual(charts.map((c) => c.id), ['epochs', 'scatter', 'distribution', 'trainloss', 'trainer', 'stability']);
  for (const chart of charts) compileChart(chart);
  const trainer = charts.find((c) => c.id === 'trainer')!.spec as unknown as { data: { values: Array<{ epoch: number; series: string; value: number }> } };
  const at = (epoch: number, series: string) => trainer.data.values.find((r) => r.epoch === epoch && r.series === series)?.value;
  assert.equal(at(0.5, 'trainer loss'), undefined, 'a loss not logged yet is no point');
  assert.equal(at(2, 'trainer eval_loss'), input.epochs[3]!.trainer!.evalLoss);
  assert.ok(Math.abs(at(2, 'held-out ln(perplexity) (ours)')! - Math.log(m.epochs[3]!.perplexity!)) < 1e-12);
  assert.doesNotMatch(JSON.stringify(charts[0]!.spec), /"format":"d"/, 'no integer-only epoch ticks');
  assert.match(JSON.stringify(buildCharts(whole, [])[0]!.spec), /"format":"d"/);

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-fractional-'));
  try {
    const files = await writeReport(dir, m, [], { title: 'fractional' });
    const names = await fs.readdir(dir);
    assert.ok(names.includes('chart-trainer.svg'));
    const csv = names.find((n) => n.endsWith('.csv'))!;
    const lines = (await fs.readFile(path.join(dir, csv), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 13);
    assert.match(lines[1]!, /^0\.5,/);
    const written = JSON.parse(await fs.readFile(files.json, 'utf8'));
    assert.deepEqual(written.epochs[1].trainer, m.epochs[1]!.trainer);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
