// Metrics regression check: compare a metrics.json against a committed baseline of chosen
// metric paths, each with an absolute tolerance.
//
// Baseline file:
//   { "metrics":   { "selection.epoch": 7, "epochs.3.perplexity": 12.31, ... },
//     "tolerance": { "selection.epoch": 0, "epochs.3.perplexity": 0.25, ... } }
// A path is dot-separated; numeric segments index arrays ("epochs.3" is the 4th epoch row, whose
// "epochs.3.epoch" the default baseline pins too, so a shifted table cannot pass silently). The
// base model (epoch 0) is not in "epochs": its paths are "base.perplexity", "base.quality.mean",
// "base.change.quality.mean", ...
// Numbers pass when |now - baseline| <= tolerance (a missing tolerance means exact); strings,
// booleans and null must be equal. A path missing from metrics.json fails.
import type { Metrics } from './types.ts';

export type BaselineValue = number | string | boolean | null;

export interface Baseline {
  description?: string;
  metrics: Record<string, BaselineValue>;
  tolerance: Record<string, number>;
}

export type RegressionStatus = 'ok' | 'FAIL' | 'MISSING';

export interface RegressionRow {
  metric: string;
  baseline: BaselineValue;
  now: BaselineValue | undefined;
  /** now - baseline for numbers, null otherwise. */
  difference: number | null;
  tolerance: number;
  status: RegressionStatus;
}

export class BaselineError extends Error {
  override name = 'BaselineError';
}

/** Validate a parsed baseline file; `where` names the file in errors. */
export function parseBaseline(value: unknown, where: string): Baseline {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BaselineError(`${where}: expected an object with "metrics" and "tolerance"`);
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!['metrics', 'tolerance', 'description'].includes(key)) throw new BaselineError(`${where}: unknown key "${key}" (allowed: metrics, tolerance, description)`);
  }
  const metrics = obj.metrics;
  if (metrics === null || typeof metrics !== 'object' || Array.isArray(metrics)) throw new BaselineError(`${where}: "metrics" must be an object of path -> value`);
  for (const [path, v] of Object.entries(metrics as Record<string, unknown>)) {
    if (!(v === null || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean')) {
      throw new BaselineError(`${where}: metrics."${path}": expected a number, string, boolean or null, got ${JSON.stringify(v)}`);
    }
  }
  const tolerance = obj.tolerance ?? {};
  if (tolerance === null || typeof tolerance !== 'object' || Array.isArray(tolerance)) throw new BaselineError(`${where}: "tolerance" must be an object of path -> number`);
  for (const [path, t] of Object.entries(tolerance as Record<string, unknown>)) {
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new BaselineError(`${where}: tolerance."${path}": expected a number >= 0, got ${JSON.stringify(t)}`);
    if (!(path in (metrics as object))) throw new BaselineError(`${where}: tolerance."${path}": no such path under "metrics" (typo?)`);
  }
  const out: Baseline = { metrics: metrics as Record<string, BaselineValue>, tolerance: tolerance as Record<string, number> };
  if (typeof obj.description === 'string') out.description = obj.description;
  return out;
}

/** Look up a dot path; undefined when any segment is missing. */
export function lookupPath(root: unknown, path: string): unknown {
  let node: unknown = root;
  for (const segment of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    if (Array.isArray(node)) {
      if (!/^\d+$/.test(segment)) return undefined;
      node = node[Number(segment)];
    } else {
      if (!Object.prototype.hasOwnProperty.call(node, segment)) return undefined;
      node = (node as Record<string, unknown>)[segment];
    }
  }
  return node;
}

export function compareMetrics(metrics: unknown, baseline: Baseline): RegressionRow[] {
  return Object.entries(baseline.metrics).map(([metric, expected]) => {
    const tolerance = baseline.tolerance[metric] ?? 0;
    const found = lookupPath(metrics, metric);
    if (found === undefined || (found !== null && typeof found === 'object')) {
      return { metric, baseline: expected, now: undefined, difference: null, tolerance, status: 'MISSING' as const };
    }
    const now = found as BaselineValue;
    if (typeof expected === 'number' && typeof now === 'number') {
      const difference = now - expected;
      // A hair of slack so a tolerance written as 0.1 passes a difference computed as 0.1000000001.
      const ok = Math.abs(difference) <= tolerance + 1e-12 * Math.max(1, Math.abs(expected));
      return { metric, baseline: expected, now, difference, tolerance, status: ok ? ('ok' as const) : ('FAIL' as const) };
    }
    return { metric, baseline: expected, now, difference: null, tolerance, status: now === expected ? ('ok' as const) : ('FAIL' as const) };
  });
}

export function regressionFailed(rows: RegressionRow[]): boolean {
  return rows.some((r) => r.status !== 'ok');
}

/** A plain-text table: metric, baseline, now, difference, tolerance, status. */
export function formatRegressionTable(rows: RegressionRow[]): string {
  const header = ['metric', 'baseline', 'now', 'difference', 'tolerance', 'status'];
  const body = rows.map((r) => [
    r.metric,
    formatValue(r.baseline),
    r.now === undefined ? '(missing)' : formatValue(r.now),
    r.difference === null ? '' : (r.difference > 0 ? '+' : '') + formatNumber(r.difference),
    formatNumber(r.tolerance),
    r.status,
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (c === 0 || c === cells.length - 1 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function formatNumber(x: number): string {
  if (x === 0) return '0';
  const abs = Math.abs(x);
  return abs >= 1e-4 && abs < 1e6 ? String(Number(x.toPrecision(6))) : x.toExponential(3);
}

function formatValue(v: BaselineValue): string {
  return typeof v === 'number' ? formatNumber(v) : JSON.stringify(v);
}

/**
 * A baseline from a metrics.json with default tolerances: exact for the selected epoch, epoch
 * numbers and data counts; 2% of the value for perplexity, bits per byte and train loss; 0.25
 * on the 1..6 quality scale; 0.15 for correlation coefficients; 0.5 for the quality lost. With
 * a base row (metrics.base) its epoch, perplexity, bits per byte and quality are pinned the same way.
 */
export function createBaseline(metrics: Metrics): Baseline {
  const out: Baseline = {
    description: 'Metrics regression baseline (lima-harness regress). Paths index metrics.json; tolerances are absolute.',
    metrics: {},
    tolerance: {},
  };
  const put = (path: string, value: BaselineValue, tolerance: number) => {
    out.metrics[path] = value;
    out.tolerance[path] = round(tolerance);
  };
  put('data.train', metrics.data.train, 0);
  put('data.heldout', metrics.data.heldout, 0);
  put('data.dev', metrics.data.dev, 0);
  put('selection.epoch', metrics.selection.epoch, 0);
  metrics.epochs.forEach((e, i) => {
    put(`epochs.${i}.epoch`, e.epoch, 0);
    put(`epochs.${i}.perplexity`, e.perplexity, relative(e.perplexity, 0.02));
    put(`epochs.${i}.bitsPerByte`, e.bitsPerByte, relative(e.bitsPerByte, 0.02));
    put(`epochs.${i}.quality.mean`, e.quality.mean, 0.25);
    put(`epochs.${i}.trainLoss`, e.trainLoss, relative(e.trainLoss, 0.02));
  });
  // The base model's reference row (epoch 0), when the study has one; its paths sit under "base".
  if (metrics.base) {
    put('base.epoch', metrics.base.epoch, 0);
    put('base.perplexity', metrics.base.perplexity, relative(metrics.base.perplexity, 0.02));
    put('base.bitsPerByte', metrics.base.bitsPerByte, relative(metrics.base.bitsPerByte, 0.02));
    put('base.quality.mean', metrics.base.quality.mean, 0.25);
  }
  for (const name of ['pearson', 'spearman', 'kendall'] as const) put(`correlation.${name}.r`, metrics.correlation[name].r, 0.15);
  put('selection.qualityLostByPerplexity.mean', metrics.selection.qualityLostByPerplexity.mean, 0.5);
  // Every held-out answer token scored exactly once: anything else is a scoring bug.
  if (metrics.heldoutCoverage) put('heldoutCoverage.coverage', metrics.heldoutCoverage.coverage, 0);
  return out;
}

function relative(value: number | null, fraction: number): number {
  return value === null ? 0 : Math.max(Math.abs(value) * fraction, 1e-6);
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}
