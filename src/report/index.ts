// The report stage: index.html (one self-contained file, vega inlined, opens offline from
// file://), a static SVG of every chart rendered in Node, metrics.csv and metrics.json.
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import * as vega from 'vega';
import { writeFileAtomic } from '../util/atomic.ts';
import type { DrilldownExample, Metrics } from '../analysis/types.ts';
import { epochTable, tableRows } from '../analysis/tables.ts';
import { buildCharts, compileChart, type Chart } from './charts.ts';
import { vegaBundles } from './html.ts';
import { renderPage } from './page.ts';

export { buildCharts, compileChart, type Chart } from './charts.ts';
export { escapeHtml, jsonForScript } from './html.ts';

export interface ReportFiles {
  html: string;
  csv: string;
  json: string;
  svgs: string[];
}

export async function writeReport(outDir: string, metrics: Metrics, drilldown: DrilldownExample[], opts: { title?: string } = {}): Promise<ReportFiles> {
  const charts = buildCharts(metrics, drilldown);
  const svgFiles: Record<string, string> = {};
  const svgs: string[] = [];
  for (const chart of charts) {
    const file = path.join(outDir, `chart-${chart.id}.svg`);
    await writeFileAtomic(file, await renderSvg(chart));
    svgFiles[chart.id] = path.basename(file);
    svgs.push(file);
  }

  const json = path.join(outDir, 'metrics.json');
  await writeFileAtomic(json, JSON.stringify(metrics, null, 2) + '\n');

  const csv = path.join(outDir, 'metrics.csv');
  await writeFileAtomic(csv, stringify(tableRows(epochTable(metrics)), { header: true, cast: { boolean: (v) => (v ? 'true' : 'false') } }));

  // index.html last: its presence means the report is complete.
  const html = path.join(outDir, 'index.html');
  const title = opts.title ?? 'lima-harness report';
  await writeFileAtomic(html, renderPage({ title, metrics, drilldown, charts, svgFiles, bundles: vegaBundles() }));
  return { html, csv, json, svgs };
}

/** Render one chart to SVG in Node (no canvas, no browser). */
export async function renderSvg(chart: Chart): Promise<string> {
  const view = new vega.View(vega.parse(compileChart(chart) as vega.Spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
