// `lima-harness regress METRICS BASELINE`: compare a metrics.json with a committed baseline and
// exit non-zero when any metric moved beyond its tolerance or is missing. The table is printed
// either way. `--write-baseline` creates the baseline from a metrics.json instead.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../util/atomic.ts';
import { stripBom } from '../util/text.ts';
import { compareMetrics, createBaseline, formatRegressionTable, parseBaseline, regressionFailed } from '../analysis/regress.ts';
import type { Metrics } from '../analysis/types.ts';

const USAGE = `Usage: lima-harness regress METRICS.json BASELINE.json
       lima-harness regress --write-baseline METRICS.json BASELINE.json

Compares metrics.json (written by 'experiment') with a baseline file:
  { "metrics":   { "selection.epoch": 7, "epochs.3.perplexity": 12.31, "correlation.pearson.r": 0.42 },
    "tolerance": { "selection.epoch": 0, "epochs.3.perplexity": 0.25,  "correlation.pearson.r": 0.15 } }
Paths are dot-separated into metrics.json (numbers index arrays: epochs.3 is the 4th epoch row;
the base model, epoch 0, when evaluated, is not in epochs but under base: base.perplexity).
Tolerances are absolute; a path without one must match exactly.
Prints a table (metric, baseline, now, difference, tolerance, status) and exits 1 when any metric
moved beyond its tolerance or is missing, 0 otherwise; 2 for usage or unreadable input.

Options:
  --write-baseline   write BASELINE.json from METRICS.json with default tolerances (exact for
                     the selected epoch and counts, 2% for perplexity / bits per byte / train
                     loss, 0.25 for mean quality, 0.15 for correlations); edit it to taste
  -h, --help         this help`;

export interface CommandOutput {
  log: (text: string) => void;
  error: (text: string) => void;
}

export async function regressCommand(argv: string[], out: CommandOutput = { log: console.log, error: console.error }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { 'write-baseline': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    out.error(`lima-harness regress: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    out.log(USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 2) {
    out.error(`lima-harness regress: expected METRICS.json and BASELINE.json, got ${parsed.positionals.length} argument(s)\n\n${USAGE}`);
    return 2;
  }
  const [metricsFile, baselineFile] = parsed.positionals as [string, string];
  try {
    const metrics = await readJson(metricsFile);
    if (parsed.values['write-baseline']) {
      const m = metrics as Partial<Metrics> | null;
      if (!m || !Array.isArray(m.epochs) || !m.selection || !m.correlation || !m.data) {
        throw new Error(`${metricsFile}: not a metrics.json (needs epochs, correlation, selection, data)`);
      }
      const baseline = createBaseline(metrics as Metrics);
      await writeFileAtomic(baselineFile, JSON.stringify(baseline, null, 2) + '\n');
      out.log(`regress: wrote ${baselineFile} (${Object.keys(baseline.metrics).length} metrics from ${metricsFile})`);
      return 0;
    }
    const baseline = parseBaseline(await readJson(baselineFile), baselineFile);
    const rows = compareMetrics(metrics, baseline);
    out.log(formatRegressionTable(rows));
    const bad = rows.filter((r) => r.status !== 'ok');
    if (regressionFailed(rows)) {
      out.error(`regress: ${bad.length} of ${rows.length} metrics moved beyond tolerance or are missing (${metricsFile} vs ${baselineFile})`);
      return 1;
    }
    out.log(`regress: all ${rows.length} metrics within tolerance`);
    return 0;
  } catch (err) {
    out.error(`lima-harness regress: ${(err as Error).message}`);
    return 2;
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = stripBom(await readFile(file, 'utf8')); // a baseline edited on Windows may start with a byte order mark
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
}
