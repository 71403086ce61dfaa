// Per-epoch tables as danfo DataFrames. The statistics themselves are computed in plain TS
// (analyze.ts) for exactness and speed; these group-bys are an independent second computation
// of the per-epoch figures that analyze() checks itself against, and the shape the report's
// CSV is written from.
import * as dfd from 'danfojs-node';
import type { AnalysisInput, Metrics } from './types.ts';

export interface EpochTotals {
  epoch: number;
  nll: number;
  tokens: number;
  bytes: number;
}

/** Held-out sums of nll, tokens and bytes per epoch (danfo group-by). */
export function heldoutTotalsByEpoch(rows: AnalysisInput['perplexity']): EpochTotals[] {
  if (rows.length === 0) return [];
  const df = new dfd.DataFrame({
    epoch: rows.map((r) => r.epoch),
    nll: rows.map((r) => r.nll),
    tokens: rows.map((r) => r.tokens),
    bytes: rows.map((r) => r.bytes),
  });
  const sums = df.groupby(['epoch']).agg({ nll: 'sum', tokens: 'sum', bytes: 'sum' }) as dfd.DataFrame;
  return columnsToRows(sums, { epoch: 'epoch', nll: 'nll_sum', tokens: 'tokens_sum', bytes: 'bytes_sum' }) as unknown as EpochTotals[];
}

/** Mean dev quality per epoch: per-example mean over valid samples, then mean over examples (danfo). */
export function devQualityByEpoch(rows: AnalysisInput['quality']): Array<{ epoch: number; quality: number; examples: number }> {
  const valid = rows.filter((r) => r.score !== null);
  if (valid.length === 0) return [];
  const df = new dfd.DataFrame({
    epoch: valid.map((r) => r.epoch),
    exampleId: valid.map((r) => r.exampleId),
    score: valid.map((r) => r.score as number),
  });
  const perExample = df.groupby(['epoch', 'exampleId']).agg({ score: 'mean' }) as dfd.DataFrame;
  const perEpoch = perExample.groupby(['epoch']).agg({ score_mean: ['mean', 'count'] }) as dfd.DataFrame;
  return columnsToRows(perEpoch, { epoch: 'epoch', quality: 'score_mean_mean', examples: 'score_mean_count' }) as unknown as Array<{
    epoch: number;
    quality: number;
    examples: number;
  }>;
}

/**
 * One row per epoch, the columns metrics.csv holds. Invalid judgments by reason get one column
 * each, `invalid_<reason>`, for every reason that occurs at some epoch (0 where it did not).
 * The base model (metrics.base), when present, is the first row, epoch 0, with `reference`
 * true (false on every fine-tuning epoch), `selected` false and `stability` empty: it is not a
 * candidate. The perplexity interval (perplexityCiLow, perplexityCiHigh, perplexityCiUnreliable)
 * comes after the columns that were there before it, then `reference`. Columns added since
 * are appended after `reference`, so earlier columns keep their places: `checkpoint` (the
 * checkpoint folder or file of that epoch, empty when not named), and what an imported series'
 * trainer logged (EpochMetrics.trainer), `trainerLoss`, `trainerEvalLoss` (nats per token) and
 * `trainerStep`, empty when absent.
 */
export function epochTable(metrics: Metrics): dfd.DataFrame {
  const e = metrics.base ? [metrics.base, ...metrics.epochs] : metrics.epochs;
  const isBase = (x: (typeof e)[number]) => x === metrics.base;
  const reasons = [...new Set(e.flatMap((x) => Object.keys(x.quality.invalidByReason)))].sort();
  return new dfd.DataFrame({
    epoch: e.map((x) => x.epoch),
    perplexity: e.map((x) => x.perplexity),
    bitsPerByte: e.map((x) => x.bitsPerByte),
    quality: e.map((x) => x.quality.mean),
    qualityCiLow: e.map((x) => x.quality.ciLow),
    qualityCiHigh: e.map((x) => x.quality.ciHigh),
    qualityCiUnreliable: e.map((x) => x.quality.intervalUnreliable),
    qualityN: e.map((x) => x.quality.n),
    invalidJudgments: e.map((x) => x.quality.invalid),
    ...Object.fromEntries(reasons.map((r) => [`invalid_${r}`, e.map((x) => x.quality.invalidByReason[r] ?? 0)])),
    trainLoss: e.map((x) => x.trainLoss),
    selected: e.map((x) => !isBase(x) && x.epoch === metrics.selection.epoch),
    stability: e.map((x) => (isBase(x) ? null : (metrics.selection.stability[String(x.epoch)] ?? 0))),
    perplexityCiLow: e.map((x) => x.perplexityCi.low),
    perplexityCiHigh: e.map((x) => x.perplexityCi.high),
    perplexityCiUnreliable: e.map((x) => x.perplexityCi.intervalUnreliable),
    reference: e.map((x) => isBase(x)),
    checkpoint: e.map((x) => x.checkpoint ?? null),
    trainerLoss: e.map((x) => x.trainer?.loss ?? null),
    trainerEvalLoss: e.map((x) => x.trainer?.evalLoss ?? null),
    trainerStep: e.map((x) => x.trainer?.step ?? null),
  });
}

/** DataFrame -> plain row objects (nulls stay null; danfo shows missing values as NaN/undefined). */
export function tableRows(df: dfd.DataFrame): Array<Record<string, unknown>> {
  const columns = df.columns;
  const values = df.values as unknown[][];
  return values.map((row) => Object.fromEntries(columns.map((c, i) => [c, normaliseCell(row[i])])));
}

function normaliseCell(v: unknown): unknown {
  if (v === undefined || (typeof v === 'number' && Number.isNaN(v))) return null;
  return v;
}

function columnsToRows(df: dfd.DataFrame, mapping: Record<string, string>): Array<Record<string, number>> {
  const cols = Object.fromEntries(Object.entries(mapping).map(([name, col]) => [name, df.column(col).values as number[]]));
  const n = df.shape[0];
  const rows: Array<Record<string, number>> = [];
  for (let i = 0; i < n; i++) rows.push(Object.fromEntries(Object.keys(mapping).map((name) => [name, Number(cols[name]![i])])));
  return rows.sort((a, b) => a.epoch! - b.epoch!);
}
