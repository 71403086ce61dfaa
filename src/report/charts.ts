// The report's five charts as Vega-Lite v5 specs with their data inlined, so each renders
// offline from the HTML file and in Node (static SVG). compileChart() runs vega-lite's compiler,
// which rejects a malformed spec.
import { compile, type TopLevelSpec } from 'vega-lite';
import type { DrilldownExample, Metrics } from '../analysis/types.ts';

export interface Chart {
  /** File-name and element-id friendly. */
  id: string;
  title: string;
  /** One line under the chart saying how to read it. */
  caption: string;
  spec: TopLevelSpec;
}

const WIDTH = 560;
const HEIGHT = 260;
const PPL_COLOR = '#d6604d';
const QUALITY_COLOR = '#2166ac';
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/**
 * The report's charts in order. The training-loss chart is left out when no epoch (nor the base)
 * has a training loss (a GGUF series logs none): it would be empty axes; hasTrainLoss() says so,
 * and the page notes the omission.
 */
export function buildCharts(metrics: Metrics, drilldown: DrilldownExample[]): Chart[] {
  const trainer = metrics.epochs.some((e) => e.trainer) ? [trainerChart(metrics)] : [];
  const trainLoss = hasTrainLoss(metrics) ? [trainLossChart(metrics)] : [];
  return [epochChart(metrics), scatterChart(metrics), distributionChart(metrics, drilldown), ...trainLoss, ...trainer, stabilityChart(metrics)];
}

/** Whether any epoch (or the base row) has a training loss to chart. */
export function hasTrainLoss(metrics: Metrics): boolean {
  return metrics.epochs.some((e) => e.trainLoss !== null) || (metrics.base?.trainLoss ?? null) !== null;
}

/** What the epoch axis counts, as its title: 'epoch' (our runs, trainer_state.json epochs), 'step' or 'position' (metrics.positionUnit). */
export function positionName(metrics: Metrics): string {
  return metrics.positionUnit ?? 'epoch';
}

/** Compile with vega-lite (throws on an invalid spec) and return the Vega spec. */
export function compileChart(chart: Chart): object {
  return compile(chart.spec).spec;
}

function epochRows(metrics: Metrics) {
  return metrics.epochs.map((e) => ({
    epoch: e.epoch,
    perplexity: e.perplexity,
    quality: e.quality.mean,
    qualityLow: e.quality.ciLow,
    qualityHigh: e.quality.ciHigh,
    trainLoss: e.trainLoss,
  }));
}

/** The base model's (epoch 0) row in epochRows' shape, or none: it is drawn as a reference, never on the epoch lines. */
function baseRows(metrics: Metrics) {
  const b = metrics.base;
  return b ? [{ epoch: b.epoch, perplexity: b.perplexity, quality: b.quality.mean, qualityLow: b.quality.ciLow, qualityHigh: b.quality.ciHigh, trainLoss: b.trainLoss }] : [];
}

/**
 * A horizontal reference line across the whole epoch axis at the base model's value of `field`,
 * labelled, as a layer inside the epoch chart's layer for that y axis (so it shares its scale).
 * None when there is no base or its value is undefined.
 */
function baseRule(metrics: Metrics, field: 'perplexity' | 'quality', x: object, color: string, align: 'left' | 'right') {
  const value = field === 'perplexity' ? metrics.base?.perplexity : metrics.base?.quality.mean;
  if (value === null || value === undefined) return [];
  const [lo, hi] = epochDomain(metrics);
  const label = `base (epoch 0): ${value.toFixed(2)}`;
  return [
    {
      data: { values: [{ lo, hi, [field]: value, label }] },
      layer: [
        { mark: { type: 'rule' as const, color, strokeDash: [2, 3], size: 1.5 }, encoding: { x: { ...x, field: 'lo' }, x2: { field: 'hi' }, tooltip: [{ field: 'label' }] } },
        {
          mark: { type: 'text' as const, color, align, dx: align === 'left' ? 3 : -3, dy: -7, fontSize: 10 },
          encoding: { x: { ...x, field: align === 'left' ? 'lo' : 'hi' }, text: { field: 'label' } },
        },
      ],
    },
  ];
}

/** The intervals' level as text: 0.95 -> "95%". */
function level(metrics: Metrics): string {
  return `${Number((metrics.analysis.confidence * 100).toPrecision(6))}%`;
}

/**
 * The epoch axis: whole-epoch ticks for our own runs; an imported series' positions may be
 * fractional (checkpoints saved by steps), and then the ticks are not forced to integers.
 */
function epochAxis(metrics: Metrics): { tickMinStep?: number; format?: string } {
  return metrics.epochs.every((e) => Number.isInteger(e.epoch)) ? { tickMinStep: 1, format: 'd' } : {};
}

function epochDomain(metrics: Metrics): [number, number] {
  const epochs = metrics.epochs.map((e) => e.epoch);
  const lo = Math.min(...epochs, metrics.selection.window[0]);
  const hi = Math.max(...epochs, metrics.selection.window[1]);
  return [lo - 0.5, hi + 0.5];
}

/** (1) Perplexity and quality against epoch on independent y axes; window shaded; choice marked. */
function epochChart(metrics: Metrics): Chart {
  const rows = epochRows(metrics);
  const domain = epochDomain(metrics);
  const x = { field: 'epoch', type: 'quantitative' as const, title: positionName(metrics), scale: { domain, nice: false }, axis: epochAxis(metrics) };
  const [wlo, whi] = metrics.selection.window;
  const selected = metrics.selection.epoch;
  return {
    id: 'epochs',
    title: `Held-out perplexity and dev quality per ${positionName(metrics)}`,
    caption:
      `Red: held-out perplexity (left axis). Blue: mean dev quality with its ${level(metrics)} bootstrap interval (right axis). Shaded: the selection window ${wlo}..${whi}. Dashed: the selected epoch.` +
      (metrics.base ? ' Dotted horizontal lines: the base model (epoch 0, before fine-tuning) as a reference, red for its perplexity, blue for its quality.' : ''),
    spec: {
      $schema: SCHEMA,
      width: WIDTH,
      height: HEIGHT,
      layer: [
        {
          data: { values: [{ lo: wlo - 0.5, hi: whi + 0.5 }] },
          mark: { type: 'rect', color: '#999', opacity: 0.15 },
          encoding: { x: { ...x, field: 'lo' }, x2: { field: 'hi' } },
        },
        {
          data: { values: rows },
          layer: [
            { mark: { type: 'line', color: PPL_COLOR, point: { color: PPL_COLOR } } },
            { mark: { type: 'point', opacity: 0 }, encoding: { tooltip: [{ field: 'epoch' }, { field: 'perplexity', format: '.3f' }] } },
            ...baseRule(metrics, 'perplexity', x, PPL_COLOR, 'left'),
          ],
          encoding: {
            x,
            y: { field: 'perplexity', type: 'quantitative', scale: { zero: false }, axis: { title: 'held-out perplexity', titleColor: PPL_COLOR } },
          },
        },
        {
          data: { values: rows },
          layer: [
            { mark: { type: 'errorbar', color: QUALITY_COLOR, opacity: 0.6 }, encoding: { y: { field: 'qualityLow', type: 'quantitative' }, y2: { field: 'qualityHigh' } } },
            {
              mark: { type: 'line', color: QUALITY_COLOR, point: { color: QUALITY_COLOR } },
              encoding: {
                y: { field: 'quality', type: 'quantitative' },
                tooltip: [{ field: 'epoch' }, { field: 'quality', format: '.3f' }, { field: 'qualityLow', format: '.3f' }, { field: 'qualityHigh', format: '.3f' }],
              },
            },
            ...baseRule(metrics, 'quality', x, QUALITY_COLOR, 'right'),
          ],
          encoding: {
            x,
            y: { field: 'quality', type: 'quantitative', scale: { zero: false }, axis: { title: 'mean dev quality (1-6)', titleColor: QUALITY_COLOR, orient: 'right' } },
          },
        },
        ...(selected === null
          ? []
          : [
              {
                data: { values: [{ epoch: selected, label: `selected: ${positionName(metrics)} ${selected}` }] },
                layer: [
                  { mark: { type: 'rule' as const, strokeDash: [6, 4], color: '#333', size: 2 } },
                  { mark: { type: 'text' as const, align: 'left' as const, dx: 4, dy: -4, baseline: 'top' as const, y: 0 }, encoding: { text: { field: 'label' } } },
                ],
                encoding: { x },
              },
            ]),
      ],
      resolve: { scale: { y: 'independent' } },
    } as TopLevelSpec,
  };
}

/** (2) Perplexity against quality, one labelled point per epoch, a least-squares line, r in the title. */
function scatterChart(metrics: Metrics): Chart {
  const rows = epochRows(metrics).filter((r) => r.perplexity !== null && r.quality !== null);
  const r = metrics.correlation.pearson;
  const fmt = (v: number | null) => (v === null ? 'n/a' : (v >= 0 ? '+' : '') + v.toFixed(2));
  const title = `r(perplexity, quality) = ${fmt(r.r)}` + (r.ciLow !== null ? ` [${fmt(r.ciLow)}, ${fmt(r.ciHigh)}]${r.intervalUnreliable ? ' (interval unreliable)' : ''}` : '');
  const enc = {
    x: { field: 'perplexity', type: 'quantitative' as const, scale: { zero: false }, title: 'held-out perplexity' },
    y: { field: 'quality', type: 'quantitative' as const, scale: { zero: false }, title: 'mean dev quality (1-6)' },
  };
  return {
    id: 'scatter',
    title: 'Perplexity against quality, one point per epoch',
    caption:
      'Each point is an epoch (labelled). The line is a least-squares fit across epochs; r is Pearson with its bootstrap interval.' +
      (metrics.base ? ' The base model (epoch 0) is not a point here: r is across the fine-tuning epochs only.' : ''),
    spec: {
      $schema: SCHEMA,
      width: WIDTH,
      height: HEIGHT,
      title,
      data: { values: rows },
      encoding: enc,
      layer: [
        { mark: { type: 'point', filled: true, size: 60, color: QUALITY_COLOR }, encoding: { tooltip: [{ field: 'epoch' }, { field: 'perplexity', format: '.3f' }, { field: 'quality', format: '.3f' }] } },
        { mark: { type: 'text', dx: 8, align: 'left', fontSize: 11 }, encoding: { text: { field: 'epoch' } } },
        ...(rows.length >= 2 ? [{ mark: { type: 'line' as const, color: '#888', strokeDash: [4, 3] }, transform: [{ regression: 'quality', on: 'perplexity' }] }] : []),
      ],
    } as TopLevelSpec,
  };
}

/** (3) Quality distribution per epoch: per-example mean scores (box plot), from the drill-down. */
function distributionChart(metrics: Metrics, drilldown: DrilldownExample[]): Chart {
  const rows: Array<{ epoch: number; exampleId: string; score: number }> = [];
  for (const ex of drilldown) {
    const byEpoch = new Map<number, number[]>();
    for (const g of ex.generations) {
      if (g.score === null) continue;
      const list = byEpoch.get(g.epoch) ?? [];
      list.push(g.score);
      byEpoch.set(g.epoch, list);
    }
    for (const [epoch, scores] of byEpoch) rows.push({ epoch, exampleId: ex.exampleId, score: scores.reduce((a, b) => a + b, 0) / scores.length });
  }
  rows.sort((a, b) => a.epoch - b.epoch);
  // The base model (epoch 0), when the study has one, is the first category, labelled as such.
  const base = metrics.base !== undefined;
  const x = {
    field: 'epoch',
    type: 'ordinal' as const,
    title: positionName(metrics),
    sort: [...(base ? [0] : []), ...metrics.epochs.map((e) => e.epoch)],
    ...(base ? { axis: { labelExpr: "datum.value == 0 ? '0 (base)' : datum.label", labelAngle: 0 } } : {}),
  };
  if (rows.length === 0) {
    // No per-example scores were handed in: show the per-epoch means and intervals instead.
    return {
      id: 'distribution',
      title: 'Dev quality per epoch',
      caption: `No per-example scores were available, so this shows each epoch's mean quality and ${level(metrics)} bootstrap interval.`,
      spec: {
        $schema: SCHEMA,
        width: WIDTH,
        height: HEIGHT,
        data: { values: [...baseRows(metrics), ...epochRows(metrics)] },
        encoding: { x },
        layer: [
          { mark: { type: 'errorbar', color: QUALITY_COLOR }, encoding: { y: { field: 'qualityLow', type: 'quantitative', title: 'quality (1-6)' }, y2: { field: 'qualityHigh' } } },
          { mark: { type: 'point', filled: true, color: QUALITY_COLOR }, encoding: { y: { field: 'quality', type: 'quantitative' } } },
        ],
      } as TopLevelSpec,
    };
  }
  return {
    id: 'distribution',
    title: 'Dev quality distribution per epoch',
    caption:
      'Box plot of per-example scores (each dev example\'s mean over its valid samples) at every epoch; dots are individual examples.' +
      (base ? ' "0 (base)" is the base model before fine-tuning, a reference.' : ''),
    spec: {
      $schema: SCHEMA,
      width: WIDTH,
      height: HEIGHT,
      data: { values: rows },
      encoding: { x },
      layer: [
        { mark: { type: 'boxplot', extent: 'min-max', color: QUALITY_COLOR, opacity: 0.5 }, encoding: { y: { field: 'score', type: 'quantitative', title: 'per-example quality (1-6)', scale: { domain: [1, 6] } } } },
        {
          mark: { type: 'point', size: 12, opacity: 0.35, color: '#333' },
          encoding: { y: { field: 'score', type: 'quantitative' }, xOffset: { field: 'exampleId', type: 'nominal' }, tooltip: [{ field: 'exampleId' }, { field: 'score', format: '.2f' }] },
        },
      ],
    } as TopLevelSpec,
  };
}

/**
 * (4) Training loss per epoch: our runs' mean over each epoch; an imported series' trainLoss is
 * its trainer's last logged loss at or before the checkpoint's step, and the caption says so.
 */
function trainLossChart(metrics: Metrics): Chart {
  const logged = metrics.epochs.some((e) => e.trainer);
  return {
    id: 'trainloss',
    title: `Training loss per ${positionName(metrics)}`,
    caption: logged
      ? "The trainer's last logged training loss at or before each checkpoint's step (trainer_state.json log_history; nats per token over its own training data, not a mean over the epoch)."
      : 'Mean training loss over each epoch (nats per response token).',
    spec: {
      $schema: SCHEMA,
      width: WIDTH,
      height: 200,
      data: { values: epochRows(metrics) },
      mark: { type: 'line', point: true, color: '#4d4d4d' },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: positionName(metrics), scale: { domain: epochDomain(metrics), nice: false }, axis: epochAxis(metrics) },
        y: { field: 'trainLoss', type: 'quantitative', title: logged ? 'trainer loss (last logged)' : 'mean train loss', scale: { zero: false } },
        tooltip: [{ field: 'epoch' }, { field: 'trainLoss', format: '.4f' }],
      },
    } as TopLevelSpec,
  };
}

/**
 * (4b, imported checkpoint series only) What the series' own trainer logged, its loss and
 * eval_loss at each checkpoint (trainer_state.json), beside our held-out ln(perplexity): all
 * nats per token, though over different text and tokens (the trainer's own eval set and masking).
 */
function trainerChart(metrics: Metrics): Chart {
  const rows: Array<{ epoch: number; series: string; value: number; step: number | null }> = [];
  for (const e of metrics.epochs) {
    const step = e.trainer?.step ?? null;
    if (e.trainer?.loss != null) rows.push({ epoch: e.epoch, series: 'trainer loss', value: e.trainer.loss, step });
    if (e.trainer?.evalLoss != null) rows.push({ epoch: e.epoch, series: 'trainer eval_loss', value: e.trainer.evalLoss, step });
    if (e.perplexity !== null && e.perplexity > 0) rows.push({ epoch: e.epoch, series: 'held-out ln(perplexity) (ours)', value: Math.log(e.perplexity), step });
  }
  const series = ['trainer loss', 'trainer eval_loss', 'held-out ln(perplexity) (ours)'];
  return {
    id: 'trainer',
    title: "The trainer's logged losses beside our held-out perplexity",
    caption:
      "From each checkpoint's trainer_state.json: the last training loss and eval_loss logged at or before its step (eval_loss is what load_best_model_at_end would have used), " +
      'and our held-out ln(perplexity) on the same scale (nats per token; the trainer measured on its own data and tokens).',
    spec: {
      $schema: SCHEMA,
      width: WIDTH,
      height: 220,
      data: { values: rows },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: positionName(metrics), scale: { domain: epochDomain(metrics), nice: false }, axis: epochAxis(metrics) },
        y: { field: 'value', type: 'quantitative', title: 'nats per token', scale: { zero: false } },
        color: { field: 'series', type: 'nominal', title: null, scale: { domain: series, range: ['#4d4d4d', '#999999', PPL_COLOR] } },
        tooltip: [{ field: 'epoch' }, { field: 'step' }, { field: 'series' }, { field: 'value', format: '.4f' }],
      },
    } as TopLevelSpec,
  };
}

/** (5) How often each epoch wins the selection across bootstrap resamples. */
function stabilityChart(metrics: Metrics): Chart {
  const rows = Object.entries(metrics.selection.stability)
    .map(([epoch, fraction]) => ({ epoch: Number(epoch), fraction, selected: Number(epoch) === metrics.selection.epoch ? 'selected' : 'other' }))
    .sort((a, b) => a.epoch - b.epoch);
  return {
    id: 'stability',
    title: 'Selection stability',
    caption: 'Share of bootstrap resamples (of held-out and dev examples) in which the selection rule picks each epoch.',
    spec: {
      $schema: SCHEMA,
      width: WIDTH,
      height: 200,
      data: { values: rows },
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'epoch', type: 'ordinal', title: positionName(metrics), sort: rows.map((r) => r.epoch) },
        y: { field: 'fraction', type: 'quantitative', title: 'win fraction', scale: { domain: [0, 1] }, axis: { format: '%' } },
        color: { field: 'selected', type: 'nominal', scale: { domain: ['selected', 'other'], range: [QUALITY_COLOR, '#bbb'] }, legend: null },
        tooltip: [{ field: 'epoch' }, { field: 'fraction', format: '.1%' }],
      },
    } as TopLevelSpec,
  };
}
