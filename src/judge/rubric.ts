// The offline rubric judge: four transparent sub-scores in [0, 1] mapped to LIMA's 1..6 scale.
// It needs no service and is pure and deterministic, but it is only a PROXY for a human or LLM
// judging helpfulness: it rewards overlap with the reference, finishing, not repeating, and
// structure where the reference has structure. It cannot tell a correct answer from a fluent
// wrong one that shares the reference's words.
import type { Judge, JudgeInput, Judgment, JudgeStats } from './types.ts';

/** Sub-score weights; sub-scores that cannot be computed (no reference) are left out and the rest renormalised. */
export const RUBRIC_WEIGHTS = { content: 0.5, completeness: 0.2, degeneration: 0.2, organisation: 0.1 } as const;
export type RubricSubscore = keyof typeof RUBRIC_WEIGHTS;

/** Length ratio (response / reference words) outside [0.3, 3] is penalised proportionally. */
const LENGTH_RATIO_MIN = 0.3;
const LENGTH_RATIO_MAX = 3;
/** A response longer than this many words with no line break at all counts as a run-on. */
const RUN_ON_WORDS = 150;
/** LCS is quadratic: compare at most this many words from each side. */
const LCS_MAX_WORDS = 2000;

const { content: W_CONTENT, completeness: W_COMPLETENESS, degeneration: W_DEGENERATION, organisation: W_ORGANISATION } = RUBRIC_WEIGHTS;
const WEIGHTS_TEXT = `completeness ${W_COMPLETENESS}, degeneration ${W_DEGENERATION}, organisation ${W_ORGANISATION}`;

export const RUBRIC_FORMULA =
  `score = 1 + round(5 x weighted mean of sub-scores in [0,1]); weights content ${W_CONTENT}, ${WEIGHTS_TEXT}, ` +
  'renormalised over the sub-scores that apply (no reference: content, and the length part of completeness, are left out). ' +
  'content = ROUGE-L F1 (longest common subsequence of lowercased word tokens, common English function words removed) of response vs reference; ' +
  'completeness = mean of [1 if it ended with end-of-turn, 0 if truncated] and [length ratio vs reference, 1 inside 0.3x..3x, else ratio/0.3 or 3/ratio]; ' +
  'degeneration (higher = better) = mean of (1 - fraction of repeated word 4-grams) and distinct-2 (unique / total word bigrams); ' +
  `organisation = share of the reference's structure kinds (list: bullets or numbers; headings; paragraphs) the response also has, ` +
  `or, when the reference has none, 1 unless the response is one unbroken run-on of more than ${RUN_ON_WORDS} words (0.5). An empty response scores 1.`;

export function wordTokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+(?:['’][\p{L}]+)*/gu) ?? [];
}

// Function words are left out of the content overlap: two unrelated English answers share
// many of them, which would give an off-topic answer ROUGE-L near 0.2 instead of near 0.
const FUNCTION_WORDS = new Set(
  ('a an the and or but if then so of to in on at by for with from as into about than that this these those it its ' +
    'is are was were be been being am do does did have has had i you he she we they me him her us them my your our their ' +
    'not no can could will would should may might must there here what which who whom how when where why all any some')
    .split(' '),
);

/** Word tokens without function words (all tokens when nothing else is left). */
export function contentTokens(tokens: readonly string[]): string[] {
  const kept = tokens.filter((t) => !FUNCTION_WORDS.has(t));
  return kept.length > 0 ? kept : [...tokens];
}

/** Longest common subsequence length (two-row dynamic programme). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Uint32Array(b.length + 1);
  let curr = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      curr[j] = ai === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, curr[j - 1]!);
    }
    [prev, curr] = [curr, prev];
  }
  return prev[b.length]!;
}

/** ROUGE-L F1 over word tokens (1 when both are empty is never reached: callers handle empty). */
export function rougeLF1(candidate: readonly string[], reference: readonly string[]): number {
  const c = candidate.slice(0, LCS_MAX_WORDS);
  const r = reference.slice(0, LCS_MAX_WORDS);
  const lcs = lcsLength(c, r);
  if (lcs === 0) return 0;
  const precision = lcs / c.length;
  const recall = lcs / r.length;
  return (2 * precision * recall) / (precision + recall);
}

function ngrams(tokens: readonly string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= tokens.length; i++) out.push(tokens.slice(i, i + n).join('\u0000'));
  return out;
}

/** 1 - fraction of repeated word 4-grams, averaged with distinct-2. Texts too short for n-grams count as not repeating. */
export function degenerationScore(tokens: readonly string[]): number {
  const four = ngrams(tokens, 4);
  const repeated = four.length === 0 ? 0 : 1 - new Set(four).size / four.length;
  const two = ngrams(tokens, 2);
  const distinct2 = two.length === 0 ? 1 : new Set(two).size / two.length;
  return (1 - repeated + distinct2) / 2;
}

export interface Structure {
  list: boolean;
  heading: boolean;
  paragraphs: boolean;
}

export function structureOf(text: string): Structure {
  return {
    list: /^[ \t]*(?:[-*•+][ \t]+|\d{1,3}[.)][ \t]+)\S/m.test(text),
    heading: /^[ \t]*#{1,6}[ \t]+\S/m.test(text) || /^[ \t]*\*\*[^*\n]{1,80}\*\*:?[ \t]*$/m.test(text),
    paragraphs: /\S[ \t]*\n[ \t]*\n[ \t]*\S/.test(text),
  };
}

export function organisationScore(response: string, responseWords: number, reference: string | undefined): number {
  const got = structureOf(response);
  if (reference !== undefined) {
    const want = structureOf(reference);
    const kinds = (Object.keys(want) as Array<keyof Structure>).filter((k) => want[k]);
    if (kinds.length > 0) return kinds.filter((k) => got[k]).length / kinds.length;
  }
  return responseWords > RUN_ON_WORDS && !/\n/.test(response.trim()) ? 0.5 : 1;
}

export function completenessScore(input: JudgeInput, responseWords: number, referenceWords: number | undefined): number | undefined {
  const parts: number[] = [];
  if (input.endedWithEot !== undefined) parts.push(input.endedWithEot ? 1 : 0);
  if (referenceWords !== undefined && referenceWords > 0) {
    const ratio = responseWords / referenceWords;
    parts.push(ratio < LENGTH_RATIO_MIN ? ratio / LENGTH_RATIO_MIN : ratio > LENGTH_RATIO_MAX ? LENGTH_RATIO_MAX / ratio : 1);
  }
  return parts.length === 0 ? undefined : parts.reduce((a, b) => a + b, 0) / parts.length;
}

/** The rubric's judgment of one input: pure and deterministic. */
export function rubricJudgment(input: JudgeInput): Judgment {
  const tokens = wordTokens(input.response);
  if (tokens.length === 0) {
    return { score: 1, valid: true, raw: 'rubric: empty response', reason: 'empty response -> 1', subscores: {} };
  }
  const referenceWords = input.reference !== undefined ? wordTokens(input.reference) : [];
  const reference = referenceWords.length > 0 ? input.reference : undefined;
  const referenceTokens = referenceWords.length > 0 ? referenceWords : undefined;
  const subscores: Partial<Record<RubricSubscore, number>> = {};
  if (referenceTokens) subscores.content = rougeLF1(contentTokens(tokens), contentTokens(referenceTokens));
  const completeness = completenessScore(input, tokens.length, referenceTokens?.length);
  if (completeness !== undefined) subscores.completeness = completeness;
  subscores.degeneration = degenerationScore(tokens);
  subscores.organisation = organisationScore(input.response, tokens.length, reference);

  // The score is computed from the stored (rounded) sub-scores, so anyone can recompute it.
  const rounded = Object.fromEntries(Object.entries(subscores).map(([k, v]) => [k, round4(v)])) as Partial<Record<RubricSubscore, number>>;
  let weighted = 0;
  let totalWeight = 0;
  for (const [name, value] of Object.entries(rounded) as Array<[RubricSubscore, number]>) {
    weighted += RUBRIC_WEIGHTS[name] * value;
    totalWeight += RUBRIC_WEIGHTS[name];
  }
  const mean = weighted / totalWeight;
  const score = 1 + Math.round(5 * mean);
  const parts = Object.entries(rounded).map(([k, v]) => `${k} ${v.toFixed(2)}`);
  return {
    score,
    valid: true,
    raw: `rubric: ${Object.entries(rounded).map(([k, v]) => `${k}=${v}`).join(' ')} mean=${round4(mean)}`,
    reason: `${parts.join(', ')} -> weighted mean ${mean.toFixed(3)} -> 1 + round(5 x ${mean.toFixed(3)}) = ${score}`,
    subscores: rounded as Record<string, number>,
  };
}

function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}

export function createRubricJudge(): Judge {
  const stats: JudgeStats = { requests: 0, cacheHits: 0, invalid: 0 };
  return {
    kind: 'rubric',
    describe() {
      return (
        'Offline rubric judge, a transparent proxy for human or LLM judgment of helpfulness (not a replacement): ' +
        `score = 1 + round(5 x weighted mean of content ROUGE-L F1 vs the reference ${W_CONTENT}, ${WEIGHTS_TEXT}).`
      );
    },
    async judge(input) {
      return rubricJudgment(input);
    },
    stats: () => ({ ...stats }),
  };
}
