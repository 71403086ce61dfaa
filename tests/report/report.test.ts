// Report files: charts compile with vega-lite, untrusted text is escaped, the HTML is
// self-contained, SVGs, CSV and metrics.json are written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { analyze } from '../../src/analysis/index.ts';
import { buildCharts, compileChart, escapeHtml, jsonForScript, writeReport } from '../../src/report/index.ts';
import { syntheticDrilldown, syntheticInput } from '../analysis/fixtures.ts';

const input = syntheticInput({ epochs: 8, heldout: 60, dev: 12, samples: 2, invalidRate: 0.1, bootstrap: 60 });
const metrics = analyze(input);
const drilldown = syntheticDrilldown(input, 4);

test('escapeHtml and jsonForScript neutralise markup', () => {
  assert.equal(escapeHtml('<script>alert("x") & \'y\'</script>'), '&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;');
  const json = jsonForScript({ text: '</script><!-- \u2028' });
  assert.ok(!json.includes('<'));
  assert.deepEqual(JSON.parse(json), { text: '</script><!-- \u2028' });
});

test('all five charts compile with vega-lite, including edge cases', () => {
  const charts = buildCharts(metrics, drilldown);
  assert.deepEqual(charts.map((c) => c.id), ['epochs', 'scatter', 'distribution', 'trainloss', 'stability']);
  for (const chart of charts) {
    const vegaSpec = compileChart(chart) as { marks?: unknown[]; data?: unknown[] };
    assert.ok(Array.isArray(vegaSpec.marks) && vegaSpec.marks.length > 0, `${chart.id} compiles to marks`);
  }
  // The epoch chart has two independent y axes, the shaded window and the selection rule.
  const epochSpec = JSON.stringify(charts[0]!.spec);
  assert.match(epochSpec, /"resolve":\{"scale":\{"y":"independent"\}\}/);
  assert.match(epochSpec, /"type":"rect"/);
  assert.match(epochSpec, /"type":"rule"/);
  // r appears in the scatter chart's title.
  assert.match(JSON.stringify(charts[1]!.spec), /"title":"r\(perplexity, quality\) = [+-]\d\.\d\d/);
  // Without a drill-down, and with no selection, charts still compile.
  const noSelection = structuredClone(metrics);
  noSelection.selection.epoch = null;
  noSelection.selection.stability = {};
  for (const chart of buildCharts(noSelection, [])) compileChart(chart);
});

test('writeReport writes a self-contained, escaped index.html and its companions', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-report-'));
  const files = await writeReport(dir, metrics, drilldown, { title: 'Study <b>x</b>' });
  assert.equal(files.html, path.join(dir, 'index.html'));
  const html = await fs.readFile(files.html, 'utf8');

  // The prompt's <script> shows as text; it never appears raw.
  assert.ok(html.includes('How do I stop &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; from running &amp; why?'));
  assert.ok(!html.includes('<script>alert('), 'raw script from data must not appear');
  assert.ok(html.includes('&lt;/details&gt; must not close anything'));
  assert.ok(html.includes('Epoch 1 says &lt;b&gt;hi&lt;/b&gt;'));
  assert.ok(html.includes('<title>Study &lt;b&gt;x&lt;/b&gt;</title>'));
  // Exactly the script elements we put there: 3 libraries, 5 specs, 1 bootstrap.
  assert.equal((html.match(/<script[\s>]/g) ?? []).length, 9);
  assert.equal((html.match(/<\/script>/g) ?? []).length, 9);
  // Self-contained: the libraries are inlined and nothing is loaded from elsewhere.
  assert.ok(html.includes('data-lib="vega-embed"'));
  assert.ok(!/<script[^>]+src=/i.test(html));
  assert.ok(!/<link[^>]+href=/i.test(html));
  // Summary at the top.
  assert.ok(html.includes(`Ship <strong>epoch ${metrics.selection.epoch}</strong>`));
  assert.ok(html.includes(escapeHtml(metrics.correlation.summary)));
  assert.match(html, /a rubric is a proxy/);
  assert.equal((html.match(/<details>/g) ?? []).length, drilldown.length);

  // metrics.json is the metrics, verbatim.
  assert.deepEqual(JSON.parse(await fs.readFile(files.json, 'utf8')), JSON.parse(JSON.stringify(metrics)));

  // metrics.csv: one row per epoch.
  // Every field is a number, a boolean or empty, so a plain split reads it.
  const [header, ...lines] = (await fs.readFile(files.csv, 'utf8')).trim().split('\n');
  const columns = header!.split(',');
  assert.deepEqual(columns.slice(0, 4), ['epoch', 'perplexity', 'bitsPerByte', 'quality']);
  const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i]!, v])));
  assert.equal(rows.length, metrics.epochs.length);
  assert.equal(Number(rows[2]!.epoch), metrics.epochs[2]!.epoch);
  assert.ok(Math.abs(Number(rows[2]!.perplexity) - metrics.epochs[2]!.perplexity!) < 1e-9);
  assert.equal(rows.filter((r) => r.selected === 'true').length, 1);

  // A static SVG per chart, with marks in it.
  assert.equal(files.svgs.length, 5);
  for (const svg of files.svgs) {
    const text = await fs.readFile(svg, 'utf8');
    assert.match(text, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(text, /mark-(line|symbol|rect|text)/);
  }
  // No temp files left behind.
  assert.deepEqual((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp')), []);
});

test('an unreliable interval is marked with why; the level, the resampling and the epoch count are stated', async () => {
  const { renderPage } = await import('../../src/report/page.ts');
  // Every dev score 4 except one 5: about a third of the resamples have constant quality.
  const flat = syntheticInput({ epochs: 6, heldout: 30, dev: 20, bootstrap: 100 });
  for (const q of flat.quality) q.score = q.epoch === 6 && q.exampleId === 'd3' ? 5 : 4;
  // A dev example with a valid judgment at epoch 1 only in d3: that epoch's mean is often undefined too.
  for (const q of flat.quality) if (q.epoch === 1 && q.exampleId !== 'd3') q.score = null;
  const m = analyze({ ...flat, confidence: 0.9 });
  const c = m.correlation.pearson;
  assert.equal(c.intervalUnreliable, true);
  const html = renderPage({ title: 't', metrics: m, drilldown: [], charts: buildCharts(m, []), svgFiles: {}, bundles: [] });
  // The correlation row: interval, then the mark and its reason.
  const row = html.match(/<tr><td class="text">Pearson<\/td>.*?<\/tr>/)![0];
  assert.match(row, new RegExp(`\\] <span class="unreliable">unreliable: ${c.undefinedReplicates} of 100 resamples left r undefined \\(`));
  // The per-epoch row of epoch 1 and its level.
  const e1 = m.epochs[0]!.quality;
  assert.equal(e1.intervalUnreliable, true);
  assert.ok(html.includes(`unreliable: ${e1.undefinedReplicates} of 100 resamples left the mean undefined (no valid judgment)`));
  assert.match(html, /<th>90% CI<\/th>/);
  assert.match(html, /<th>90% bootstrap CI<\/th>/);
  assert.match(html, /correlation across 6 epochs/);
  assert.match(html, /90% percentile bootstrap interval over 100 resamples of the dev examples \(quality\) and the held-out examples \(perplexity\), one draw used at every epoch\. The epochs themselves are fixed: each r is across only 6 epochs/);
  assert.match(html, /more than 5% of the resamples left its statistic undefined/);
  // The summary states no direction, and the scatter chart's title carries the mark.
  assert.match(m.correlation.summary, /the data cannot tell/);
  assert.match(JSON.stringify(buildCharts(m, [])[1]!.spec), /\(interval unreliable\)/);
  // A reliable interval carries no mark.
  assert.ok(!/class="unreliable"/.test(renderPage({ title: 't', metrics, drilldown: [], charts: [], svgFiles: {}, bundles: [] })));
});

test('run time adds the stages but not evaluation that overlapped training', async () => {
  const { renderPage } = await import('../../src/report/page.ts');
  const timed = structuredClone(metrics);
  timed.durationsSeconds = { train: 10, eval: 2, evalDuringTraining: 5 };
  const html = renderPage({ title: 't', metrics: timed, drilldown: [], charts: [], svgFiles: {}, bundles: [] });
  assert.match(html, /<strong>Run time:<\/strong> 12\.0 s in total/);
  assert.match(html, /evalDuringTraining: 5\.0 s \(on another core while training ran; not in the total\)/);
});

test('held-out coverage passes from the analysis input to metrics.json and the report', async () => {
  const { renderPage } = await import('../../src/report/page.ts');
  const coverage = { examples: 40, answerTokens: 5000, scoredTokens: 5000, coverage: 1, promptCut: 7, multiWindow: 3, windows: 46, window: 96, stride: 95 };
  const m = analyze({ ...input, heldoutCoverage: coverage });
  assert.deepEqual(m.heldoutCoverage, coverage);
  const html = renderPage({ title: 't', metrics: m, drilldown: [], charts: [], svgFiles: {}, bundles: [] });
  assert.match(html, /Held-out coverage:<\/strong> 5000 of 5000 answer tokens scored \(1\.000\)/);
  assert.match(html, /7 of 40 prompts were cut from the left/);
  assert.match(html, /3 answers were scored in more than one window/);
  // Without it (older inputs), no coverage line and no crash.
  assert.ok(!/Held-out coverage/.test(renderPage({ title: 't', metrics, drilldown: [], charts: [], svgFiles: {}, bundles: [] })));
});

test('the chat format passes from the analysis input to metrics.json and the report, escaped', async () => {
  const { renderPage } = await import('../../src/report/page.ts');
  const { NATIVE_FORMAT_DESCRIPTION } = await import('../../src/eval/eval-tokenizer.ts');
  const one = analyze({ ...input, chatFormat: [{ description: NATIVE_FORMAT_DESCRIPTION, epochs: [1, 2, 3] }] });
  assert.deepEqual(one.chatFormat, [{ description: NATIVE_FORMAT_DESCRIPTION, epochs: [1, 2, 3] }]);
  const html = renderPage({ title: 't', metrics: one, drilldown: [], charts: [], svgFiles: {}, bundles: [] });
  assert.match(html, /<strong>Chat format:<\/strong> lima-harness chat format \(&lt;\|role\|&gt; content &lt;\|eot\|&gt; per turn/);
  assert.ok(!html.includes('<|role|>'), 'the description is escaped');
  const two = analyze({ ...input, chatFormat: [{ description: 'chat template from tokenizer_config.json (sha256 abc)', epochs: [1] }, { description: 'plain template <x>', epochs: [2, 3] }] });
  const html2 = renderPage({ title: 't', metrics: two, drilldown: [], charts: [], svgFiles: {}, bundles: [] });
  assert.match(html2, /<li>plain template &lt;x&gt; \(epochs 2, 3\)<\/li>/);
  assert.ok(!/Chat format/.test(renderPage({ title: 't', metrics, drilldown: [], charts: [], svgFiles: {}, bundles: [] })));
});

test('a prompt shortened for the drill-down summary never splits a character', async () => {
  const { renderPage } = await import('../../src/report/page.ts');
  // The cut falls at UTF-16 index 110: inside a surrogate pair (emoji), then inside a ZWJ family
  // emoji, then after a base letter with its combining accent pending.
  const cases = [
    { prompt: 'a'.repeat(109) + '\u{1F600}' + ' and more text', preview: 'a'.repeat(109) + '…' },
    { prompt: 'a'.repeat(105) + '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}' + ' tail', preview: 'a'.repeat(105) + '…' },
    { prompt: 'a'.repeat(109) + 'e\u0301' + ' tail', preview: 'a'.repeat(109) + '…' },
    { prompt: '\u{1F600}'.repeat(60), preview: '\u{1F600}'.repeat(55) + '…' },
    { prompt: 'short \u{1F600}', preview: 'short \u{1F600}' },
  ];
  for (const { prompt, preview } of cases) {
    const example = { exampleId: 'x', prompt, reference: 'r', generations: [] };
    const html = renderPage({ title: 't', metrics, drilldown: [example], charts: [], svgFiles: {}, bundles: [] });
    const summary = /<summary><code>x<\/code> (.*?) <span class="muted">/.exec(html)![1]!;
    assert.equal(summary, preview);
    assert.ok(!/[\uD800-\uDFFF]/u.test(summary), 'no lone surrogate'); // with /u, a whole pair does not match
  }
});

test('invalid judgments by reason: in the per-epoch table, a legend, the drill-down and metrics.csv, escaped', async () => {
  const { renderPage } = await import('../../src/report/page.ts');
  const { epochTable, tableRows } = await import('../../src/analysis/tables.ts');
  const { INVALID_REASONS } = await import('../../src/judge/parse.ts');
  const withReasons = syntheticInput({ epochs: 4, heldout: 20, dev: 10, samples: 2, invalidRate: 0.3, invalidReasons: ['truncated', 'no-choice', '<b>odd</b>'], bootstrap: 20 });
  const m = analyze(withReasons);
  const html = renderPage({ title: 't', metrics: m, drilldown: syntheticDrilldown(withReasons, 2), charts: [], svgFiles: {}, bundles: [] });
  const withInvalid = m.epochs.filter((e) => e.quality.invalid > 0);
  assert.ok(withInvalid.length > 0, 'the fixture has invalid judgments');
  for (const e of withInvalid) {
    const breakdown = Object.entries(e.quality.invalidByReason).map(([r, n]) => `${r} ${n}`).join(', ');
    assert.ok(html.includes(`<td>${e.quality.invalid} <span class="muted">(${escapeHtml(breakdown)})</span></td>`), `epoch ${e.epoch}: ${breakdown}`);
  }
  assert.ok(html.includes(`<code>truncated</code>`) && html.includes(escapeHtml(INVALID_REASONS.truncated)));
  assert.ok(html.includes(escapeHtml(INVALID_REASONS['no-choice'])));
  assert.ok(html.includes('&lt;b&gt;odd&lt;/b&gt;') && !html.includes('<b>odd</b>'), 'a reason from the data is escaped');
  assert.match(html, /<td>– <span class="muted">\((truncated|no-choice|&lt;b&gt;odd&lt;\/b&gt;)\)<\/span><\/td>/);

  const rows = tableRows(epochTable(m));
  const reasonColumns = Object.keys(rows[0]!).filter((c) => c.startsWith('invalid_'));
  assert.deepEqual(reasonColumns, ['invalid_<b>odd</b>', 'invalid_no-choice', 'invalid_truncated']);
  for (const row of rows) assert.equal(reasonColumns.reduce((a, c) => a + (row[c] as number), 0), row.invalidJudgments);

  // Without invalid judgments: no legend, no extra columns.
  const clean = analyze(syntheticInput({ epochs: 3, heldout: 20, dev: 5, bootstrap: 10 }));
  const cleanHtml = renderPage({ title: 't', metrics: clean, drilldown: [], charts: [], svgFiles: {}, bundles: [] });
  assert.ok(!cleanHtml.includes('Invalid judgments are left out of the means'));
  assert.deepEqual(Object.keys(tableRows(epochTable(clean))[0]!).filter((c) => c.startsWith('invalid_')), []);
});

test('held-out perplexity intervals: after each perplexity in the per-epoch table, before the reference column in metrics.csv', async () => {
  const { renderPage } = await import('../../src/report/page.ts');
  const html = renderPage({ title: 't', metrics, drilldown: [], charts: [], svgFiles: {}, bundles: [] });
  const table = html.slice(html.indexOf('<h2>Per epoch</h2>'), html.indexOf('<h2>Charts</h2>'));
  assert.match(table, /<th>held-out perplexity \[95% CI\]<\/th>/);
  for (const e of metrics.epochs) {
    const ci = e.perplexityCi;
    assert.ok(table.includes(`<td>${e.perplexity!.toFixed(3)} [${ci.low!.toFixed(3)}, ${ci.high!.toFixed(3)}]</td><td>${e.bitsPerByte!.toFixed(4)}</td>`), `epoch ${e.epoch}`);
  }
  // An unreliable one is marked, with why; an undefined perplexity shows no interval.
  const marked = structuredClone(metrics);
  marked.epochs[0]!.perplexityCi = { ...marked.epochs[0]!.perplexityCi, undefinedReplicates: 9, undefinedByReason: { noHeldoutTokens: 9 }, intervalUnreliable: true };
  marked.epochs[1]!.perplexity = null;
  const markedTable = renderPage({ title: 't', metrics: marked, drilldown: [], charts: [], svgFiles: {}, bundles: [] });
  assert.ok(markedTable.includes(`] <span class="unreliable">unreliable: 9 of 60 resamples left the perplexity undefined (no held-out tokens)</span></td>`));
  assert.match(markedTable, new RegExp(`<td>${marked.epochs[1]!.epoch} <span class="muted">\\(outside window\\)</span></td><td>–</td>`));

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-report-pplci-'));
  const files = await writeReport(dir, metrics, []);
  const [header, ...lines] = (await fs.readFile(files.csv, 'utf8')).trim().split('\n');
  const columns = header!.split(',');
  // Columns added later (checkpoint, the trainer's logs) come after `reference`, so these keep their places.
  assert.deepEqual(columns.slice(-8), ['perplexityCiLow', 'perplexityCiHigh', 'perplexityCiUnreliable', 'reference', 'checkpoint', 'trainerLoss', 'trainerEvalLoss', 'trainerStep']);
  lines.forEach((line, i) => {
    const row = Object.fromEntries(line.split(',').map((v, k) => [columns[k]!, v]));
    assert.equal(Number(row.perplexityCiLow), metrics.epochs[i]!.perplexityCi.low);
    assert.equal(Number(row.perplexityCiHigh), metrics.epochs[i]!.perplexityCi.high);
    assert.equal(row.perplexityCiUnreliable, 'false');
  });
});
