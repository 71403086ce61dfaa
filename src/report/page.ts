// The report page: summary at the top, then charts, then the per-example drill-down. Pure
// string building; every data-derived string is escaped here.
import { EVAL_DURING_TRAINING, type DrilldownExample, type EpochMetrics, type Metrics, type ReplicateCount } from '../analysis/types.ts';
import { BASE_EPOCH, undefinedReplicatesText } from '../analysis/analyze.ts';
import { hasTrainLoss, positionName, type Chart } from './charts.ts';
import { escapeHtml as h, inlineScript, jsonForScript } from './html.ts';
import { truncate } from '../util/text.ts';
import { INVALID_REASONS } from '../judge/parse.ts';

export interface PageInput {
  title: string;
  metrics: Metrics;
  drilldown: DrilldownExample[];
  charts: Chart[];
  /** File names (relative to index.html) of the static SVGs, by chart id. */
  svgFiles: Record<string, string>;
  bundles: Array<{ name: string; js: string }>;
}

const STYLE = `
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1000px; padding: 1.5em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.headline { font-size: 1.25em; background: #f3f6fa; border-left: 4px solid #2166ac; padding: .6em 1em; }
.summary { background: #fafafa; border: 1px solid #e5e5e5; padding: .6em 1em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; }
td.text, th.text { text-align: left; }
tr.selected td { background: #eaf2fb; font-weight: 600; }
tr.reference td { background: #f4f4f4; font-style: italic; color: #444; border-bottom: 2px solid #bbb; }
.chart { min-height: 120px; }
figure { margin: 1.5em 0; }
figcaption { color: #555; font-size: .9em; }
details { border: 1px solid #e2e2e2; border-radius: 4px; padding: .4em .8em; margin: .5em 0; }
summary { cursor: pointer; }
details table { width: 100%; }
details td.text { width: 85%; }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f7f7; padding: .5em; margin: .3em 0; font-size: .88em; max-height: 24em; overflow: auto; }
.muted { color: #666; }
.proxy { color: #8a4b00; }
.unreliable { color: #b00020; }
`;

function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

function signed(x: number | null, digits = 2): string {
  return x === null ? '–' : (x >= 0 ? '+' : '') + x.toFixed(digits);
}

function interval(lo: number | null, hi: number | null, digits = 2, sign = false): string {
  if (lo === null || hi === null) return '';
  const f = sign ? (v: number) => signed(v, digits) : (v: number) => v.toFixed(digits);
  return `[${f(lo)}, ${f(hi)}]`;
}

/** How the held-out answers fitted the scoring window: coverage, cut prompts, rolling windows. */
function heldoutCoverageText(m: Metrics): string {
  const c = m.heldoutCoverage;
  if (!c) return '';
  return (
    `<p><strong>Held-out coverage:</strong> ${h(c.scoredTokens)} of ${h(c.answerTokens)} answer tokens scored (${h(fmt(c.coverage, 3))}), ` +
    `in windows of ${h(c.window)} tokens advancing ${h(c.stride)} at a time; ${h(c.promptCut)} of ${h(c.examples)} prompts were cut from the left ` +
    `(their end and the assistant marker kept) and ${h(c.multiWindow)} answers were scored in more than one window.</p>`
  );
}

/** The chat format(s) held-out answers were scored and dev prompts generated in, with their epochs when more than one. */
function chatFormatText(m: Metrics): string {
  const f = m.chatFormat;
  if (!f || f.length === 0) return '';
  if (f.length === 1) return `<p><strong>Chat format:</strong> ${h(f[0]!.description)}.</p>`;
  return `<p><strong>Chat formats:</strong></p><ul>${f.map((x) => `<li>${h(x.description)} (epochs ${h(x.epochs.join(', '))})</li>`).join('')}</ul>`;
}

/** How the base was pretrained, when the study pretrained one. */
function pretrainingText(m: Metrics): string {
  const p = m.pretraining;
  if (!p) return '';
  const loss = (x: number | null) => (x === null ? 'n/a' : `${x.toFixed(3)} nats/token (perplexity ${Math.exp(x).toFixed(1)})`);
  return (
    `<p><strong>Base model:</strong> a GPT of ${h(p.params.toLocaleString('en-US'))} parameters pretrained for ${h(p.steps)} steps (${h(fmt(p.epochs, 2))} epochs) on ` +
    `${h(p.tokens.train.toLocaleString('en-US'))} tokens of general text (${h(p.documents.train)} documents; ${h(p.droppedAsHeldoutOrDev)} more were dropped as duplicates of held-out or dev questions) ` +
    `in ${h(Math.round(p.seconds))} s; validation loss ${h(loss(p.validationLoss))} on ${h(p.tokens.validation.toLocaleString('en-US'))} tokens of ${h(p.documents.validation)} documents it never trained on (base ${h(p.hash.slice(0, 16))}).</p>`
  );
}

/** An interval, marked (with why) when too many resamples left its statistic undefined. */
function ciText(lo: number | null, hi: number | null, count: ReplicateCount, statistic: string, digits = 2, sign = false): string {
  const text = h(interval(lo, hi, digits, sign));
  return count.intervalUnreliable ? `${text} <span class="unreliable">unreliable: ${h(undefinedReplicatesText(count, statistic))}</span>` : text;
}

/** " [279.104, 291.233]" after an epoch's perplexity, escaped, marked (with why) when unreliable; empty when the perplexity is undefined or there were no resamples. */
function pplCi(e: EpochMetrics): string {
  const ci = e.perplexityCi;
  const text = e.perplexity === null ? '' : ciText(ci.low, ci.high, ci, 'the perplexity', 3);
  return text === '' ? '' : ` ${text}`;
}

/** 0.95 -> "95%". */
function percent(x: number): string {
  return `${Number((x * 100).toPrecision(6))}%`;
}

/** " (truncated 2, no-choice 1)" after an invalid count, escaped; empty when there are none. */
function reasonBreakdown(byReason: Record<string, number>): string {
  const parts = Object.entries(byReason).filter(([, n]) => n > 0);
  return parts.length ? ` <span class="muted">(${h(parts.map(([reason, n]) => `${reason} ${n}`).join(', '))})</span>` : '';
}

/** One line per invalid reason that occurs in the study, with what it means. */
function reasonLegend(m: Metrics): string {
  const rows = m.base ? [m.base, ...m.epochs] : m.epochs;
  const reasons = [...new Set(rows.flatMap((e) => Object.keys(e.quality.invalidByReason)))].sort();
  if (reasons.length === 0) return '';
  const items = reasons.map((r) => {
    const total = rows.reduce((a, e) => a + (e.quality.invalidByReason[r] ?? 0), 0);
    const meaning = (INVALID_REASONS as Record<string, string>)[r];
    return `<li><code>${h(r)}</code> (${h(total)} in all)${meaning ? `: ${h(meaning)}` : ''}</li>`;
  });
  return `<p class="muted">Invalid judgments are left out of the means; by reason:</p><ul class="muted">${items.join('')}</ul>`;
}

function valueText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function renderPage(p: PageInput): string {
  const m = p.metrics;
  const sel = m.selection;
  const selRow = m.epochs.find((e) => e.epoch === sel.epoch);
  // Evaluation during training ran on another core at the same time as training: not added.
  const totalSeconds = Object.entries(m.durationsSeconds).reduce((a, [k, v]) => (k === EVAL_DURING_TRAINING ? a : a + v), 0);
  const isRubric = /rubric/i.test(m.judge.kind);
  const level = percent(m.analysis.confidence);
  const judgeExtra = Object.entries(m.judge).filter(([k]) => !['kind', 'description'].includes(k));
  // What the epoch numbers count (an imported series: 'step' when placed by steps) and, when the
  // pipeline named them, the checkpoint folder or file of each epoch: the thing to ship.
  const unit = positionName(m);
  const checkpointOf = new Map(m.epochs.filter((e) => e.checkpoint !== undefined).map((e) => [e.epoch, e.checkpoint!]));
  const named = checkpointOf.size > 0;
  const shipWhat = (epoch: number): string => {
    const ck = checkpointOf.get(epoch);
    return ck === undefined ? `<strong>${h(unit)} ${h(epoch)}</strong>` : `<strong><code>${h(ck)}</code></strong> (${h(unit)} ${h(epoch)})`;
  };
  const checkpointCell = (epoch: number | null): string => (named ? `<td class="text">${epoch === null || !checkpointOf.has(epoch) ? '–' : `<code>${h(checkpointOf.get(epoch)!)}</code>`}</td>` : '');
  const checkpointHead = named ? '<th class="text">checkpoint</th>' : '';

  const headline =
    sel.epoch === null
      ? `<p class="headline">No ${h(unit)} could be selected: ${h(sel.rule)}</p>`
      : `<p class="headline">Ship ${shipWhat(sel.epoch)}: mean dev quality ${fmt(selRow?.quality.mean ?? null, 2)} ${selRow ? ciText(selRow.quality.ciLow, selRow.quality.ciHigh, selRow.quality, 'the mean') : ''}, held-out perplexity ${fmt(selRow?.perplexity ?? null, 2)}.<br><span class="muted">Rule: ${h(sel.rule)}.</span></p>`;

  const corrRows = (['pearson', 'spearman', 'kendall'] as const)
    .map((k) => {
      const c = m.correlation[k];
      return `<tr><td class="text">${k === 'kendall' ? 'Kendall tau-b' : k[0]!.toUpperCase() + k.slice(1)}</td><td>${signed(c.r)}</td><td>${ciText(c.ciLow, c.ciHigh, c, 'r', 2, true)}</td><td>${c.p !== null && c.p < 0.001 ? h('< 0.001') : fmt(c.p, 3)}</td></tr>`;
    })
    .join('');

  const altRows = sel.alternatives
    .map(
      (a) =>
        `<tr${a.epoch === sel.epoch && a === sel.alternatives[0] ? ' class="selected"' : ''}><td class="text">${h(a.rule)}</td><td>${a.epoch === null ? '–' : h(a.epoch)}</td>${checkpointCell(a.epoch)}<td>${fmt(a.quality, 2)}</td><td>${fmt(a.perplexity, 2)}</td></tr>`,
    )
    .join('');
  const lost = sel.qualityLostByPerplexity;
  const evalLost = sel.qualityLostByTrainerEvalLoss;

  // The base model (epoch 0) first, as a reference row: not a candidate, so no selection wins.
  const baseRow = m.base
    ? `<tr class="reference"><td>0 (base)</td>${named ? `<td class="text">${m.base.checkpoint === undefined ? '–' : `<code>${h(m.base.checkpoint)}</code>`}</td>` : ''}<td>${fmt(m.base.perplexity, 3)}${pplCi(m.base)}</td><td>${fmt(m.base.bitsPerByte, 4)}</td><td>${fmt(m.base.quality.mean, 3)}</td><td>${ciText(m.base.quality.ciLow, m.base.quality.ciHigh, m.base.quality, 'the mean')}</td><td>${h(m.base.quality.n)}</td><td>${h(m.base.quality.invalid)}${reasonBreakdown(m.base.quality.invalidByReason)}</td><td>${fmt(m.base.trainLoss, 4)}</td><td class="muted">reference</td></tr>\n`
    : '';
  const epochRows = m.epochs
    .map(
      (e) =>
        `<tr${e.epoch === sel.epoch ? ' class="selected"' : ''}><td>${h(e.epoch)}${e.epoch >= sel.window[0] && e.epoch <= sel.window[1] ? '' : ' <span class="muted">(outside window)</span>'}</td>${checkpointCell(e.epoch)}<td>${fmt(e.perplexity, 3)}${pplCi(e)}</td><td>${fmt(e.bitsPerByte, 4)}</td><td>${fmt(e.quality.mean, 3)}</td><td>${ciText(e.quality.ciLow, e.quality.ciHigh, e.quality, 'the mean')}</td><td>${h(e.quality.n)}</td><td>${h(e.quality.invalid)}${reasonBreakdown(e.quality.invalidByReason)}</td><td>${fmt(e.trainLoss, 4)}</td><td>${h(((sel.stability[String(e.epoch)] ?? 0) * 100).toFixed(1))}%</td></tr>`,
    )
    .join('');

  const backendItems = Object.entries(m.backend)
    .map(([k, v]) => `<li>${h(k)}: ${h(valueText(v))}</li>`)
    .join('');
  const durationItems = Object.entries(m.durationsSeconds)
    .map(([k, v]) => `<li>${h(k)}: ${h(v.toFixed(1))} s${k === EVAL_DURING_TRAINING ? ' (on another core while training ran; not in the total)' : ''}</li>`)
    .join('');

  const figures = p.charts
    .map(
      (c) => `<figure>
<h3>${h(c.title)}</h3>
<div class="chart" id="chart-${h(c.id)}" data-chart="${h(c.id)}"></div>
<figcaption>${h(c.caption)} <a href="${h(p.svgFiles[c.id] ?? '')}">static SVG</a></figcaption>
</figure>`,
    )
    .join('\n');

  const specs = p.charts.map((c) => `<script type="application/json" id="spec-${h(c.id)}">${jsonForScript(c.spec)}</script>`).join('\n');
  const bundles = p.bundles.map((b) => `<script data-lib="${h(b.name)}">${inlineScript(b.js, b.name)}</script>`).join('\n');

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${h(p.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${h(p.title)}</h1>
<p class="muted">Which epoch checkpoint to ship, and does held-out perplexity tell us? (A LIMA-style epoch-selection study.)</p>
${headline}
<div class="summary">
${m.base ? `<p><strong>Against the base model:</strong> ${h(m.base.summary)}</p>\n` : ''}<p><strong>Perplexity vs quality:</strong> ${h(m.correlation.summary)}</p>
<table><tr><th class="text">correlation across ${h(m.correlation.pairedEpochs)} epochs</th><th>r</th><th>${h(level)} bootstrap CI</th><th>permutation p</th></tr>${corrRows}</table>
<p class="muted">Every interval here is a ${h(level)} percentile bootstrap interval over ${h(m.analysis.bootstrap)} resamples of the dev examples (quality) and the held-out examples (perplexity), one draw used at every epoch. The epochs themselves are fixed: each r is across only ${h(m.correlation.pairedEpochs)} epochs, which the interval does not reflect and the two-sided permutation p (over pairings of the epochs) does. A direction is stated only when the interval excludes 0 and p &lt; ${h(m.analysis.alpha)}. An interval is marked unreliable when more than ${h(percent(m.analysis.maxUndefinedShare))} of the resamples left its statistic undefined (they are left out of it).</p>
<p class="muted">LIMA (Zhou et al. 2023) found perplexity rising while generation quality kept improving, i.e. r(perplexity, quality) &gt; 0; the sign here is measured, not assumed.</p>
<table><tr><th class="text">selection rule</th><th>${h(unit)}</th>${checkpointHead}<th>dev quality</th><th>held-out perplexity</th></tr>${altRows}</table>
<p>Quality lost by selecting on perplexity instead (quality of the selected epoch minus quality of the lowest-perplexity epoch): <strong>${signed(lost.mean)}</strong> ${ciText(lost.ciLow, lost.ciHigh, lost, 'the difference', 2, true)}.</p>
${
    evalLost
      ? `<p>Quality lost by keeping the checkpoint with the lowest trainer eval_loss instead (what <code>load_best_model_at_end</code> with <code>metric_for_best_model='loss'</code> would have kept; quality of the selected ${h(unit)} minus quality of that one): <strong>${signed(evalLost.mean)}</strong> ${ciText(evalLost.ciLow, evalLost.ciHigh, evalLost, 'the difference', 2, true)}.</p>\n`
      : ''
  }<p><strong>Judge:</strong> ${h(m.judge.kind)} – ${h(m.judge.description)}${
    isRubric ? ' <span class="proxy">(a rubric is a proxy for human or LLM judgment, not a measurement of it)</span>' : ''
  }</p>
${judgeExtra.length ? `<ul>${judgeExtra.map(([k, v]) => `<li>${h(k)}: <code>${h(valueText(v))}</code></li>`).join('')}</ul>` : ''}
<p><strong>Data:</strong> ${h(m.data.train)} training pairs, ${h(m.data.heldout)} held-out examples (perplexity), ${h(m.data.dev)} dev examples (quality).</p>
${heldoutCoverageText(m)}
${chatFormatText(m)}
${pretrainingText(m)}
<p><strong>Backend:</strong></p><ul>${backendItems}</ul>
<p><strong>Run time:</strong> ${h(totalSeconds.toFixed(1))} s in total</p><ul>${durationItems}</ul>
</div>

<h2>${m.positionUnit ? 'Per checkpoint' : 'Per epoch'}</h2>
<table>
<tr><th>${h(unit)}</th>${checkpointHead}<th>held-out perplexity [${h(level)} CI]</th><th>bits / byte</th><th>dev quality</th><th>${h(level)} CI</th><th>n</th><th>invalid judgments</th><th>train loss</th><th>selection wins</th></tr>
${baseRow}${epochRows}
</table>
${m.base ? `<p class="muted">Epoch 0 is the base model before fine-tuning${m.base.trainLoss !== null ? ' (its train loss is its pretraining loss)' : ''}: a reference row, left out of the correlation, of every selection rule and of the selection stability.</p>` : ''}
${reasonLegend(m)}

<h2>Charts</h2>
${hasTrainLoss(m) ? '' : `<p class="muted">No training loss was logged for any checkpoint${m.positionUnit ? ' (GGUF files and checkpoints without a trainer log carry none)' : ''}, so there is no training-loss chart.</p>\n`}${figures}

<h2>Drill-down: dev examples</h2>
<p class="muted">Each example's prompt, reference answer, and every epoch's generation with its score (– = invalid judgment). The selected epoch is highlighted.${
    m.base ? ' Epoch 0, shown first and marked "0 (base)", is the base model before fine-tuning.' : ''
  }</p>
${p.drilldown.map((ex) => renderExample(ex, sel.epoch)).join('\n')}

${specs}
${bundles}
<script>
(function () {
  var charts = document.querySelectorAll('[data-chart]');
  charts.forEach(function (el) {
    var id = el.getAttribute('data-chart');
    var spec = JSON.parse(document.getElementById('spec-' + id).textContent);
    vegaEmbed(el, spec, { actions: false, renderer: 'svg' }).catch(function (err) {
      el.textContent = 'Chart failed to render: ' + err;
      console.error('chart ' + id + ': ' + err);
    });
  });
})();
</script>
</body>
</html>
`;
}

function renderExample(ex: DrilldownExample, selected: number | null): string {
  const scored = ex.generations.filter((g) => g.score !== null);
  const best = scored.length ? Math.max(...scored.map((g) => g.score!)) : null;
  const preview = truncate(ex.prompt, 110);
  // The base model's generations (epoch 0) first, labelled; the rest keep their order.
  const generations = [...ex.generations.filter((g) => g.epoch === BASE_EPOCH), ...ex.generations.filter((g) => g.epoch !== BASE_EPOCH)];
  const rows = generations
    .map(
      (g) =>
        `<tr${g.epoch === BASE_EPOCH ? ' class="reference"' : g.epoch === selected ? ' class="selected"' : ''}><td>${g.epoch === BASE_EPOCH ? '0 (base)' : h(g.epoch)}</td><td>${h(g.sample)}</td><td>${g.score === null ? `–${g.invalidReason ? ` <span class="muted">(${h(g.invalidReason)})</span>` : ''}` : h(fmt(g.score, 2))}</td><td class="text"><pre>${h(g.response)}</pre></td></tr>`,
    )
    .join('');
  return `<details>
<summary><code>${h(ex.exampleId)}</code> ${h(preview)} <span class="muted">(best score ${best === null ? '–' : h(fmt(best, 2))})</span></summary>
<p><strong>Prompt</strong></p><pre>${h(ex.prompt)}</pre>
<p><strong>Reference</strong></p><pre>${h(ex.reference)}</pre>
<table><tr><th>epoch</th><th>sample</th><th>score</th><th class="text">generation</th></tr>${rows}</table>
</details>`;
}
