// Synthetic analysis inputs for tests: a LIMA-like study where held-out perplexity rises after a
// few epochs while quality keeps improving up to a peak (or any shape the caller asks for).
import { mulberry32 } from '../../src/util/rng.ts';
import type { AnalysisInput, DrilldownExample } from '../../src/analysis/types.ts';

export interface SyntheticOptions {
  epochs?: number;
  heldout?: number;
  dev?: number;
  samples?: number;
  seed?: number;
  bootstrap?: number;
  /** Mean nll per token at epoch e (default: falls to epoch 3, then rises). */
  nllPerToken?: (epoch: number) => number;
  /** Mean quality at epoch e (default: rises to a peak at epoch 8, then dips). */
  quality?: (epoch: number) => number;
  /** Share of judgments that come back invalid. */
  invalidRate?: number;
  /** Reasons given to invalid judgments in turn (none by default). */
  invalidReasons?: string[];
}

export function syntheticInput(opts: SyntheticOptions = {}): AnalysisInput {
  const epochs = opts.epochs ?? 15;
  const heldout = opts.heldout ?? 200;
  const dev = opts.dev ?? 30;
  const samples = opts.samples ?? 1;
  const rng = mulberry32(opts.seed ?? 1);
  const nllPerToken = opts.nllPerToken ?? ((e: number) => 2 + 0.02 * (e - 3) ** 2);
  const quality = opts.quality ?? ((e: number) => 2 + 2.5 * Math.exp(-((e - 8) ** 2) / 18));
  const input: AnalysisInput = {
    epochs: [],
    perplexity: [],
    quality: [],
    window: [5, 10],
    bootstrap: opts.bootstrap ?? 200,
    seed: 42,
    judge: { kind: 'rubric', description: 'Deterministic rubric (proxy for a human or LLM judge)', formula: 'score = 1 + 5 * weighted(features)' },
    data: { train: 1000, heldout, dev },
    backend: { training: 'wasm', evaluation: 'onnxruntime-node (cpu)' },
    durationsSeconds: { train: 12.5, eval: 3.25 },
  };
  let invalidCount = 0;
  for (let e = 1; e <= epochs; e++) {
    input.epochs.push({ epoch: e, trainLoss: 3 / e });
    for (let i = 0; i < heldout; i++) {
      const tokens = 20 + Math.floor(rng() * 40);
      const nll = tokens * (nllPerToken(e) + 0.3 * (rng() - 0.5));
      input.perplexity.push({ epoch: e, exampleId: `h${i}`, nll, tokens, bytes: tokens * 4 });
    }
    for (let d = 0; d < dev; d++) {
      for (let s = 0; s < samples; s++) {
        const invalid = rng() < (opts.invalidRate ?? 0);
        const raw = Math.round(quality(e) + (rng() - 0.5) * 2);
        input.quality.push({ epoch: e, exampleId: `d${d}`, sample: s, score: invalid ? null : Math.min(6, Math.max(1, raw)) });
        if (invalid && opts.invalidReasons?.length) input.quality.at(-1)!.invalidReason = opts.invalidReasons[invalidCount++ % opts.invalidReasons.length];
      }
    }
  }
  return input;
}

export function syntheticDrilldown(input: AnalysisInput, examples = 3): DrilldownExample[] {
  const ids = [...new Set(input.quality.map((q) => q.exampleId))].slice(0, examples);
  return ids.map((id, k) => ({
    exampleId: id,
    prompt: k === 0 ? 'How do I stop <script>alert("x")</script> from running & why?' : `Prompt number ${k}: explain epochs.`,
    reference: k === 0 ? 'Escape it: use &lt; and </details> must not close anything.' : `Reference answer ${k}.`,
    generations: input.quality
      .filter((q) => q.exampleId === id)
      .map((q) => ({ epoch: q.epoch, sample: q.sample, response: `Epoch ${q.epoch} says <b>hi</b> ${k}`, score: q.score, ...(q.invalidReason ? { invalidReason: q.invalidReason } : {}) })),
  }));
}

/**
 * The input plus a base model (epoch 0): a train-loss row (`trainLoss`, default null), one
 * held-out row per held-out example and one judgment per dev example and sample, at `nllPerToken`
 * nats per token and score `score(exampleIndex, sample)` (null = invalid, reason "truncated").
 * Rows are appended after the fine-tuning epochs' rows unless `first` (then they lead).
 */
export function withBase(
  input: AnalysisInput,
  opts: { nllPerToken?: number; score?: (d: number, s: number) => number | null; trainLoss?: number | null; first?: boolean } = {},
): AnalysisInput {
  const out = structuredClone(input);
  const heldout = [...new Set(input.perplexity.map((r) => r.exampleId))];
  const dev = [...new Set(input.quality.map((r) => r.exampleId))];
  const samples = Math.max(1, ...input.quality.map((r) => r.sample + 1));
  const ppl = heldout.map((id, i) => ({ epoch: 0, exampleId: id, nll: (opts.nllPerToken ?? 3) * (20 + (i % 7)), tokens: 20 + (i % 7), bytes: 4 * (20 + (i % 7)) }));
  const quality: AnalysisInput['quality'] = [];
  dev.forEach((id, d) => {
    for (let s = 0; s < samples; s++) {
      const score = opts.score ? opts.score(d, s) : 1 + ((d + s) % 3);
      quality.push(score === null ? { epoch: 0, exampleId: id, sample: s, score, invalidReason: 'truncated' } : { epoch: 0, exampleId: id, sample: s, score });
    }
  });
  const train = { epoch: 0, trainLoss: opts.trainLoss === undefined ? null : opts.trainLoss };
  if (opts.first) {
    out.epochs.unshift(train);
    out.perplexity.unshift(...ppl);
    out.quality.unshift(...quality);
  } else {
    out.epochs.push(train);
    out.perplexity.push(...ppl);
    out.quality.push(...quality);
  }
  return out;
}
