// Each epoch's held-out perplexity interval (EpochMetrics.perplexityCi, and the base row's): it
// is a replay of seeded draws of its own, contains the point estimate, narrows with more
// held-out examples, is reproducible from the seed, and adding it moved no other figure: the
// rest of metrics.json equals, bit for bit, what the code before it wrote for the same input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { analyze, type AnalysisInput, type Metrics } from '../../src/analysis/index.ts';
import { replicateSummary } from '../../src/analysis/stats.ts';
import { LOWEST_PERPLEXITY_RULE } from '../../src/analysis/analyze.ts';
import { deriveSeed, mulberry32 } from '../../src/util/rng.ts';
import { syntheticInput, withBase } from './fixtures.ts';

/**
 * The input fixtures/metrics-before-perplexity-ci.json was analysed from, by analyze() at commit
 * efe9dc3 (before perplexityCi existed): six epochs with invalid judgments of two reasons, and a
 * base whose nll per token varies by example.
 */
function snapshotInput(): AnalysisInput {
  const input = withBase(syntheticInput({ epochs: 6, heldout: 40, dev: 12, samples: 2, bootstrap: 100, invalidRate: 0.1, invalidReasons: ['truncated', 'no-choice'] }), { nllPerToken: 2.6 });
  for (const r of input.perplexity) if (r.epoch === 0) r.nll *= 1 + 0.1 * Math.sin(r.tokens * 7 + r.exampleId.length);
  return input;
}

/** metrics.json as written, with perplexityCi taken out of every epoch row and the base row. */
function withoutPerplexityCi(m: Metrics): unknown {
  const json = JSON.parse(JSON.stringify(m)) as { epochs: Array<Record<string, unknown>>; base?: Record<string, unknown> };
  for (const row of [...json.epochs, ...(json.base ? [json.base] : [])]) {
    assert.ok('perplexityCi' in row, `epoch ${row.epoch} has perplexityCi`);
    delete row.perplexityCi;
  }
  return json;
}

/**
 * Independent replay: `rows` are one model's held-out rows per epoch; each resample draws
 * ids.length example indices from `seed` (one draw for every epoch) and takes
 * exp(sum nll / sum tokens); the interval is the percentile one at `level`.
 */
function replay(input: AnalysisInput, epochs: number[], ids: string[], labels: string[], level = 0.95): Map<number, { low: number; high: number }> {
  const rng = mulberry32(deriveSeed(input.seed, ...labels));
  const byKey = new Map(input.perplexity.map((r) => [`${r.epoch}|${r.exampleId}`, r]));
  const reps = epochs.map(() => new Float64Array(input.bootstrap));
  const nll = new Float64Array(epochs.length);
  const tokens = new Float64Array(epochs.length);
  for (let b = 0; b < input.bootstrap; b++) {
    nll.fill(0);
    tokens.fill(0);
    for (let k = 0; k < ids.length; k++) {
      const id = ids[Math.floor(rng() * ids.length)]!;
      epochs.forEach((e, i) => {
        const r = byKey.get(`${e}|${id}`);
        nll[i] += r?.nll ?? 0;
        tokens[i] += r?.tokens ?? 0;
      });
    }
    epochs.forEach((_, i) => (reps[i]![b] = Math.exp(nll[i]! / tokens[i]!)));
  }
  return new Map(epochs.map((e, i) => {
    const s = replicateSummary(reps[i]!, level);
    return [e, { low: s.low, high: s.high }];
  }));
}

test('adding perplexityCi changed no other figure: the rest equals what the code before it wrote, bit for bit', () => {
  const before = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures/metrics-before-perplexity-ci.json'), 'utf8')) as Metrics;
  assert.ok(before.base && !('perplexityCi' in before.epochs[0]!), 'the fixture predates the field and has a base row');
  // Since then the lowest-perplexity rule was relabelled (it is not what HF's load_best_model_at_end
  // does: that picks by the trainer's own eval_loss); only its label changed.
  const old = before.selection.alternatives.find((a) => a.rule.startsWith('lowest held-out perplexity (HF load_best_model_at_end'));
  assert.ok(old, 'the fixture has the old label');
  old.rule = LOWEST_PERPLEXITY_RULE;
  // Every interval, p-value, stability share and sentence (JSON keeps doubles exact). Drawing
  // the perplexity resamples from the shared bootstrap (or base) generator would move them.
  assert.deepEqual(withoutPerplexityCi(analyze(snapshotInput())), before);
});

test('perplexityCi is a percentile interval over held-out resamples from its own seed (epochs and base)', () => {
  const input = snapshotInput();
  const m = analyze(input);
  const fineTuning = input.perplexity.filter((r) => r.epoch !== 0);
  const epochs = m.epochs.map((e) => e.epoch);
  const want = replay(input, epochs, [...new Set(fineTuning.map((r) => r.exampleId))], ['analysis', 'perplexity-ci']);
  for (const e of m.epochs) {
    assert.deepEqual({ low: e.perplexityCi.low, high: e.perplexityCi.high }, want.get(e.epoch), `epoch ${e.epoch}`);
    assert.deepEqual(
      { replicates: e.perplexityCi.replicates, undefinedReplicates: e.perplexityCi.undefinedReplicates, undefinedByReason: e.perplexityCi.undefinedByReason, intervalUnreliable: e.perplexityCi.intervalUnreliable },
      { replicates: 100, undefinedReplicates: 0, undefinedByReason: {}, intervalUnreliable: false },
    );
  }
  // The base: its own label, over every held-out id of the input, with the selected epoch in the same prepared table.
  const base = replay(input, [0, m.selection.epoch!], [...new Set(input.perplexity.map((r) => r.exampleId))], ['analysis', 'perplexity-ci', 'base']).get(0);
  assert.deepEqual({ low: m.base!.perplexityCi.low, high: m.base!.perplexityCi.high }, base);
  // Not the draws of the shared bootstrap generator.
  const shared = replay(input, epochs, [...new Set(fineTuning.map((r) => r.exampleId))], ['analysis', 'bootstrap']);
  assert.notDeepEqual({ low: m.epochs[0]!.perplexityCi.low, high: m.epochs[0]!.perplexityCi.high }, shared.get(m.epochs[0]!.epoch));
});

test('the interval contains the point estimate and narrows with more held-out examples', () => {
  const few = analyze(withBase(syntheticInput({ epochs: 5, heldout: 50, dev: 8, bootstrap: 300 })));
  const many = analyze(withBase(syntheticInput({ epochs: 5, heldout: 1000, dev: 8, bootstrap: 300 })));
  for (const m of [few, many]) {
    for (const e of m.epochs) {
      const { low, high } = e.perplexityCi;
      assert.ok(low !== null && high !== null && low < e.perplexity! && e.perplexity! < high, `epoch ${e.epoch}: ${e.perplexity} in [${low}, ${high}]`);
    }
    const b = m.base!;
    assert.ok(b.perplexityCi.low! <= b.perplexity! && b.perplexity! <= b.perplexityCi.high!, `base: ${b.perplexity} in [${b.perplexityCi.low}, ${b.perplexityCi.high}]`);
  }
  const width = (e: Metrics['epochs'][number]) => e.perplexityCi.high! - e.perplexityCi.low!;
  // 20 times the examples: about sqrt(20) = 4.5 times narrower.
  many.epochs.forEach((e, i) => assert.ok(width(e) * 2.5 < width(few.epochs[i]!), `epoch ${e.epoch}: ${width(e)} vs ${width(few.epochs[i]!)}`));
  // The level: a 50% interval is inside the 95% one.
  const half = analyze({ ...withBase(syntheticInput({ epochs: 5, heldout: 50, dev: 8, bootstrap: 300 })), confidence: 0.5 });
  half.epochs.forEach((e, i) => assert.ok(e.perplexityCi.low! > few.epochs[i]!.perplexityCi.low! && e.perplexityCi.high! < few.epochs[i]!.perplexityCi.high!));
});

test('reproducible from the seed; another seed moves the interval but not the perplexity', () => {
  const input = syntheticInput({ epochs: 4, heldout: 60, dev: 8, bootstrap: 100 });
  const a = analyze(input);
  assert.deepEqual(analyze(structuredClone(input)), a);
  const b = analyze({ ...input, seed: input.seed + 1 });
  assert.deepEqual(b.epochs.map((e) => e.perplexity), a.epochs.map((e) => e.perplexity));
  assert.notDeepEqual(b.epochs.map((e) => e.perplexityCi.low), a.epochs.map((e) => e.perplexityCi.low));
});

test('an epoch without held-out tokens: perplexity and interval null, every resample counted undefined; no resamples: null interval', () => {
  const input = syntheticInput({ epochs: 4, heldout: 30, dev: 8, bootstrap: 50 });
  input.perplexity = input.perplexity.filter((r) => r.epoch !== 2);
  const m = analyze(input);
  const e2 = m.epochs.find((e) => e.epoch === 2)!;
  assert.equal(e2.perplexity, null);
  assert.deepEqual(e2.perplexityCi, { low: null, high: null, replicates: 50, undefinedReplicates: 50, undefinedByReason: { noHeldoutTokens: 50 }, intervalUnreliable: true });
  assert.equal(m.epochs.find((e) => e.epoch === 3)!.perplexityCi.undefinedReplicates, 0);
  const none = analyze({ ...input, bootstrap: 0 });
  assert.deepEqual(none.epochs[0]!.perplexityCi, { low: null, high: null, replicates: 0, undefinedReplicates: 0, undefinedByReason: {}, intervalUnreliable: false });
});
