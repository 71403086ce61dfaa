// The base model (epoch 0) in the report: the reference row of the per-epoch table, the summary
// line, reference lines in the epoch chart, the first category of the distribution chart, not a
// point of the scatter, the first row of metrics.csv, labelled generations in the drill-down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { analyze } from '../../src/analysis/index.ts';
import { buildCharts, compileChart, escapeHtml, writeReport } from '../../src/report/index.ts';
import { renderSvg } from '../../src/report/index.ts';
import { renderPage } from '../../src/report/page.ts';
import { syntheticDrilldown, syntheticInput, withBase } from '../analysis/fixtures.ts';

const plainInput = syntheticInput({ epochs: 6, heldout: 40, dev: 10, samples: 2, bootstrap: 40 });
const input = withBase(plainInput, { nllPerToken: 2.2, trainLoss: 5.5 });
const metrics = analyze(input);
const drilldown = syntheticDrilldown(input, 3);

test('index.html: the base row first in the per-epoch table, its summary, its labelled generations', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-report-base-'));
  const files = await writeReport(dir, metrics, drilldown);
  const html = await fs.readFile(files.html, 'utf8');
  const b = metrics.base!;
  // The reference row, with the base's figures, right before epoch 1's row.
  const table = html.slice(html.indexOf('<h2>Per epoch</h2>'), html.indexOf('<h2>Charts</h2>'));
  const baseRow = `<tr class="reference"><td>0 (base)</td><td>${b.perplexity!.toFixed(3)} [${b.perplexityCi.low!.toFixed(3)}, ${b.perplexityCi.high!.toFixed(3)}]</td><td>${b.bitsPerByte!.toFixed(4)}</td><td>${b.quality.mean!.toFixed(3)}</td>`;
  assert.ok(table.includes(baseRow), 'base row with its figures');
  assert.ok(table.indexOf(baseRow) < table.indexOf('<tr><td>1 <span class="muted">(outside window)</span>'), 'base row before epoch 1');
  assert.ok(table.includes('<td>5.5000</td><td class="muted">reference</td></tr>'), 'pretraining loss, and no selection wins');
  assert.match(table, /Epoch 0 is the base model before fine-tuning \(its train loss is its pretraining loss\): a reference row/);
  // The summary line, escaped.
  assert.ok(html.includes(`<p><strong>Against the base model:</strong> ${escapeHtml(b.summary)}</p>`));
  // Drill-down: the base's generations first in every example, labelled, their text escaped.
  const details = html.split('<details>').slice(1);
  assert.equal(details.length, 3);
  for (const d of details) {
    const firstRow = /<tr class="reference"><td>0 \(base\)<\/td><td>0<\/td>/.exec(d);
    assert.ok(firstRow, 'a labelled base generation');
    assert.ok(d.indexOf(firstRow[0]) < d.indexOf('<td>1</td><td>0</td>'), 'before epoch 1');
    assert.ok(d.includes('Epoch 0 says &lt;b&gt;hi&lt;/b&gt;'));
  }
  // metrics.json carries the base verbatim.
  assert.deepEqual(JSON.parse(await fs.readFile(files.json, 'utf8')).base, JSON.parse(JSON.stringify(b)));
  // metrics.csv: the base first, marked as the reference; never selected, no stability.
  const [header, ...lines] = (await fs.readFile(files.csv, 'utf8')).trim().split('\n');
  const columns = header!.split(',');
  assert.deepEqual(columns.slice(0, 4), ['epoch', 'perplexity', 'bitsPerByte', 'quality']);
  assert.equal(columns.at(-5), 'reference', 'reference, then the columns added after it');
  const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i]!, v])));
  assert.equal(rows.length, metrics.epochs.length + 1);
  assert.deepEqual(rows.map((r) => r.reference), ['true', ...metrics.epochs.map(() => 'false')]);
  assert.equal(rows[0]!.epoch, '0');
  assert.ok(Math.abs(Number(rows[0]!.perplexity) - b.perplexity!) < 1e-9);
  assert.equal(rows[0]!.trainLoss, '5.5');
  assert.equal(rows[0]!.selected, 'false');
  assert.equal(rows[0]!.stability, '');
  assert.equal(rows.filter((r) => r.selected === 'true').length, 1);
  assert.equal(Number(rows[1]!.epoch), 1);
});

test('charts: dotted base lines in the epoch chart, "0 (base)" in the distribution, not in the scatter', async () => {
  const charts = buildCharts(metrics, drilldown);
  for (const chart of charts) compileChart(chart);
  const epochSpec = JSON.stringify(charts[0]!.spec);
  const b = metrics.base!;
  assert.ok(epochSpec.includes(`"label":"base (epoch 0): ${b.perplexity!.toFixed(2)}"`), 'perplexity reference line');
  assert.ok(epochSpec.includes(`"label":"base (epoch 0): ${b.quality.mean!.toFixed(2)}"`), 'quality reference line');
  assert.equal((epochSpec.match(/"strokeDash":\[2,3\]/g) ?? []).length, 2);
  assert.match(charts[0]!.caption, /Dotted horizontal lines: the base model \(epoch 0, before fine-tuning\)/);
  // The lines render, with their labels, in the static SVG.
  const svg = await renderSvg(charts[0]!);
  assert.ok(svg.includes(`base (epoch 0): ${b.perplexity!.toFixed(2)}`));
  assert.ok(svg.includes(`base (epoch 0): ${b.quality.mean!.toFixed(2)}`));
  // The epoch lines themselves stay fine-tuning epochs only.
  const lineData = (charts[0]!.spec as { layer: Array<{ data?: { values: Array<{ epoch?: number }> } }> }).layer[1]!.data!.values;
  assert.deepEqual(lineData.map((r) => r.epoch), metrics.epochs.map((e) => e.epoch));
  // Scatter: the epochs of the correlation only.
  const scatterData = (charts[1]!.spec as { data: { values: Array<{ epoch: number }> } }).data.values;
  assert.ok(scatterData.length > 0 && scatterData.every((r) => r.epoch !== 0));
  assert.match(charts[1]!.caption, /The base model \(epoch 0\) is not a point here/);
  // Distribution: the base's box first, labelled.
  const dist = charts[2]!.spec as { encoding: { x: { sort: number[]; axis?: { labelExpr: string } } }; data: { values: Array<{ epoch: number }> } };
  assert.deepEqual(dist.encoding.x.sort, [0, ...metrics.epochs.map((e) => e.epoch)]);
  assert.match(dist.encoding.x.axis!.labelExpr, /'0 \(base\)'/);
  assert.ok(dist.data.values.some((r) => r.epoch === 0));
  assert.ok((await renderSvg(charts[2]!)).includes('0 (base)'));
  // Without per-example scores the fallback shows the base's mean too.
  const fallback = buildCharts(metrics, [])[2]!;
  compileChart(fallback);
  assert.equal((fallback.spec as { data: { values: Array<{ epoch: number }> } }).data.values[0]!.epoch, 0);
});

test('without a base: no reference row, no base lines, the csv reference column all false', async () => {
  const { epochTable, tableRows } = await import('../../src/analysis/tables.ts');
  const plain = analyze(plainInput);
  const html = renderPage({ title: 't', metrics: plain, drilldown: syntheticDrilldown(plainInput, 2), charts: buildCharts(plain, []), svgFiles: {}, bundles: [] });
  assert.ok(!html.includes('0 (base)'));
  assert.ok(!html.includes('class="reference"'));
  assert.ok(!html.includes('Against the base model'));
  const charts = buildCharts(plain, syntheticDrilldown(plainInput, 2));
  assert.ok(!JSON.stringify(charts.map((c) => c.spec)).includes('base (epoch 0)'));
  assert.equal((charts[2]!.spec as { encoding: { x: { axis?: unknown } } }).encoding.x.axis, undefined);
  const rows = tableRows(epochTable(plain));
  assert.equal(rows.length, plain.epochs.length);
  assert.ok(rows.every((r) => r.reference === false));
  // A base whose perplexity and quality are undefined draws no line (and still compiles).
  const onlyLoss = structuredClone(plainInput);
  onlyLoss.epochs.push({ epoch: 0, trainLoss: 4 });
  const m = analyze(onlyLoss);
  const spec = JSON.stringify(buildCharts(m, [])[0]!.spec);
  assert.ok(!spec.includes('base (epoch 0)'));
  for (const chart of buildCharts(m, [])) compileChart(chart);
  assert.match(renderPage({ title: 't', metrics: m, drilldown: [], charts: [], svgFiles: {}, bundles: [] }), /<tr class="reference"><td>0 \(base\)<\/td><td>–<\/td>/);
});
