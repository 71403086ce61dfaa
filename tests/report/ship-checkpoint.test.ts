// Issue 13 follow-up (a new user's checkpoint series): the report names the checkpoint to ship and
// the axis' real unit, the lowest-perplexity rule says what it is, the trainer's eval_loss gets a
// rule of its own (what load_best_model_at_end picks) with its quality cost, an empty training-loss
// chart is left out, and metrics.csv carries the checkpoint and the trainer's logs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { analyze, type AnalysisInput } from '../../src/analysis/index.ts';
import { LOWEST_PERPLEXITY_RULE, TRAINER_EVAL_LOSS_RULE } from '../../src/analysis/analyze.ts';
import { compareMetrics, createBaseline, regressionFailed } from '../../src/analysis/regress.ts';
import { buildCharts, writeReport } from '../../src/report/index.ts';
import { syntheticDrilldown, syntheticInput } from '../analysis/fixtures.ts';

/** A path with characters HTML must escape, per epoch. */
const ckPath = (epoch: number) => `runs/a<b>&c/checkpoint-${epoch}`;

/** The synthetic study as an imported series placed by steps: checkpoint paths, trainer logs whose eval_loss is lowest (tied) at 2 and 3. */
function series(input: AnalysisInput, evalLoss: (epoch: number) => number | null = (e) => 3 + 0.01 * (e - 2.5) ** 2): AnalysisInput {
  return {
    ...input,
    positionUnit: 'step',
    epochs: input.epochs.map((r) => ({ ...r, checkpoint: ckPath(r.epoch), trainer: { loss: r.trainLoss, evalLoss: evalLoss(r.epoch), step: r.epoch } })),
  };
}

async function withDir<T>(f: (dir: string) => Promise<T>): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-ship-'));
  try {
    return await f(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('checkpoint paths and the position unit: metrics.json, the headline, the selection and per-checkpoint tables (escaped), metrics.csv', async () => {
  const plain = syntheticInput({ epochs: 8, heldout: 30, dev: 10, bootstrap: 50 });
  const m = analyze(series(plain));
  const mine = analyze(plain);
  assert.equal(m.selection.epoch, mine.selection.epoch, 'the selection itself does not move');
  assert.deepEqual(m.epochs.map((e) => e.checkpoint), m.epochs.map((e) => ckPath(e.epoch)));
  assert.equal(m.positionUnit, 'step');
  assert.equal(mine.positionUnit, undefined, 'our own runs: no unit key');
  assert.equal(mine.epochs[0]!.checkpoint, undefined, 'no path given: no checkpoint key');
  assert.match(m.selection.rule, /in steps 5\.\.10/);
  assert.deepEqual(m.selection.alternatives.map((a) => a.rule).filter((r) => /^(last|highest dev quality, any)/.test(r)), ['last step', 'highest dev quality, any step'], 'rules name the unit');
  assert.deepEqual(mine.selection.alternatives.map((a) => a.rule).filter((r) => /^(last|highest dev quality, any)/.test(r)), ['last epoch', 'highest dev quality, any epoch']);

  await withDir(async (dir) => {
    const files = await writeReport(dir, m, syntheticDrilldown(plain, 2), { title: 'ship' });
    const html = await fs.readFile(files.html, 'utf8');
    const sel = m.selection.epoch!;
    assert.ok(html.includes(`Ship <strong><code>runs/a&lt;b&gt;&amp;c/checkpoint-${sel}</code></strong> (step ${sel})`), 'headline names the checkpoint and its step');
    assert.ok(!html.includes('a<b>'), 'the path is escaped everywhere');
    assert.ok(html.includes('<th class="text">selection rule</th><th>step</th><th class="text">checkpoint</th>'));
    assert.ok(html.includes('<h2>Per checkpoint</h2>'));
    const alternatives = html.slice(html.indexOf('selection rule'), html.indexOf('Quality lost by selecting on perplexity'));
    for (const a of m.selection.alternatives) assert.ok(alternatives.includes(`<code>runs/a&lt;b&gt;&amp;c/checkpoint-${a.epoch}</code>`), a.rule);

    const [header, ...lines] = (await fs.readFile(files.csv, 'utf8')).trim().split('\n');
    const columns = header!.split(',');
    assert.deepEqual(columns.slice(-5), ['reference', 'checkpoint', 'trainerLoss', 'trainerEvalLoss', 'trainerStep'], 'appended after the earlier columns');
    const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i]!, v])));
    rows.forEach((row, i) => {
      const e = m.epochs[i]!;
      assert.equal(row.checkpoint, ckPath(e.epoch));
      assert.equal(Number(row.trainerEvalLoss), e.trainer!.evalLoss);
      assert.equal(Number(row.trainerStep), e.trainer!.step);
      assert.equal(row.trainerLoss === '' ? null : Number(row.trainerLoss), e.trainer!.loss);
    });
  });

  // Our own runs: the trainer and checkpoint columns are there, empty.
  await withDir(async (dir) => {
    const files = await writeReport(dir, mine, []);
    const [header, first] = (await fs.readFile(files.csv, 'utf8')).trim().split('\n');
    const row = Object.fromEntries(first!.split(',').map((v, i) => [header!.split(',')[i]!, v]));
    assert.deepEqual([row.checkpoint, row.trainerLoss, row.trainerEvalLoss, row.trainerStep], ['', '', '', '']);
    const html = await fs.readFile(files.html, 'utf8');
    assert.ok(html.includes(`Ship <strong>epoch ${mine.selection.epoch}</strong>`));
    assert.ok(!html.includes('<th class="text">checkpoint</th>'), 'no checkpoint column without paths');
  });
});

test('the CI baseline ignores the new fields: a baseline from metrics without them passes metrics with them', () => {
  const plain = syntheticInput({ epochs: 8, heldout: 30, dev: 10, bootstrap: 50 });
  const baseline = createBaseline(analyze(plain));
  const rows = compareMetrics(JSON.parse(JSON.stringify(analyze(series(plain)))), baseline);
  assert.ok(rows.length > 30);
  assert.equal(regressionFailed(rows), false, rows.filter((r) => r.status !== 'ok').map((r) => r.metric).join(', '));
  assert.ok(!Object.keys(createBaseline(analyze(series(plain))).metrics).some((k) => /checkpoint|trainer|positionUnit/.test(k)), 'createBaseline pins none of them');
});

test("rules: lowest perplexity is labelled as ours; the trainer's eval_loss rule (ties to the earlier) with its quality cost, only when eval_loss is known across the window", () => {
  const plain = syntheticInput({ epochs: 8, heldout: 30, dev: 10, bootstrap: 50 });
  const m = analyze(series(plain));
  const rules = m.selection.alternatives.map((a) => a.rule);
  assert.equal(rules[1], LOWEST_PERPLEXITY_RULE);
  assert.equal(LOWEST_PERPLEXITY_RULE, 'lowest held-out perplexity (on our held-out set)');
  assert.ok(!rules.some((r) => /HF load_best_model_at_end, metric_for_best_model/.test(r)), 'no claim that HF picks by our perplexity');
  const evalRule = m.selection.alternatives.at(-1)!;
  assert.equal(evalRule.rule, TRAINER_EVAL_LOSS_RULE);
  assert.equal(evalRule.epoch, 2, 'eval_loss ties at 2 and 3: the earlier, as HF keeps its best on strict improvement only');
  const q = (epoch: number) => m.epochs.find((e) => e.epoch === epoch)!.quality.mean!;
  assert.equal(evalRule.quality, q(2));
  const cost = m.selection.qualityLostByTrainerEvalLoss!;
  assert.ok(Math.abs(cost.mean! - (q(m.selection.epoch!) - q(2))) < 1e-12);
  assert.ok(cost.ciLow! <= cost.mean! && cost.mean! <= cost.ciHigh!, `${cost.ciLow} <= ${cost.mean} <= ${cost.ciHigh}`);
  assert.equal(cost.replicates, 50);
  // Every other figure is what the study without trainer logs gives (the cost draws no random numbers).
  const mine = analyze(plain);
  assert.deepEqual(m.selection.qualityLostByPerplexity, mine.selection.qualityLostByPerplexity);
  assert.deepEqual(m.selection.stability, mine.selection.stability);
  assert.deepEqual(m.correlation, mine.correlation);

  // eval_loss missing at one epoch inside the window [5, 10]: no such rule, no cost key.
  const gap = analyze(series(plain, (e) => (e === 6 ? null : 3 + e)));
  assert.equal(gap.selection.alternatives.length, 4);
  assert.ok(!('qualityLostByTrainerEvalLoss' in gap.selection));
  // Missing only outside the window: the rule looks at the epochs that have one.
  const early = analyze(series(plain, (e) => (e === 1 ? null : 3 + e)));
  assert.equal(early.selection.alternatives.at(-1)!.epoch, 2);

  return withDir(async (dir) => {
    const html = await fs.readFile((await writeReport(dir, m, [])).html, 'utf8');
    assert.ok(html.includes('<td class="text">lowest trainer eval_loss (what load_best_model_at_end with metric_for_best_model=&#39;loss&#39; picks)</td>'));
    assert.match(html, /Quality lost by keeping the checkpoint with the lowest trainer eval_loss instead/);
  });
});

test('training-loss chart: left out with a note when nothing logged a loss (GGUF); an HF series says it is the last logged loss', async () => {
  const plain = syntheticInput({ epochs: 6, heldout: 20, dev: 6, bootstrap: 20 });
  const gguf = analyze({ ...plain, positionUnit: 'step', epochs: plain.epochs.map((r) => ({ epoch: r.epoch, trainLoss: null, checkpoint: `gg/model-step${r.epoch}.gguf` })) });
  assert.deepEqual(buildCharts(gguf, []).map((c) => c.id), ['epochs', 'scatter', 'distribution', 'stability']);
  await withDir(async (dir) => {
    const files = await writeReport(dir, gguf, []);
    const html = await fs.readFile(files.html, 'utf8');
    assert.match(html, /No training loss was logged for any checkpoint .*so there is no training-loss chart\./);
    assert.ok(!(await fs.readdir(dir)).includes('chart-trainloss.svg'));
    assert.ok(html.includes(`Ship <strong><code>gg/model-step${gguf.selection.epoch}.gguf</code></strong> (step ${gguf.selection.epoch})`));
  });

  const hf = analyze(series(plain));
  const trainLoss = buildCharts(hf, []).find((c) => c.id === 'trainloss')!;
  assert.match(trainLoss.caption, /last logged training loss/);
  assert.doesNotMatch(trainLoss.caption, /Mean training loss over each epoch/);
  assert.match(buildCharts(analyze(plain), []).find((c) => c.id === 'trainloss')!.caption, /^Mean training loss over each epoch/);
  assert.match(JSON.stringify(trainLoss.spec), /"title":"step"/, 'the axis is titled by its unit');
});
