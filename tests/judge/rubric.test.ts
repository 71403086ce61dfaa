import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { createJudge, rubricJudgment, rougeLF1, degenerationScore, structureOf, RUBRIC_FORMULA, type JudgeInput } from '../../src/judge/index.ts';
import { wordTokens } from '../../src/judge/rubric.ts';

const PROMPT = 'How do I make a good cup of pour-over coffee at home?';
const REFERENCE = [
  'A good pour-over needs fresh beans, the right grind and patience.',
  '',
  '1. Grind 20 g of beans to a medium-fine grind, like table salt.',
  '2. Rinse the paper filter with hot water and discard the water.',
  '3. Pour 40 g of water just off the boil and let the coffee bloom for 30 seconds.',
  '4. Pour the remaining 280 g slowly in circles over two minutes.',
  '',
  'If it tastes bitter, grind coarser; if it tastes sour, grind finer.',
].join('\n');
const PROSE = 'Grind 20 g of beans to a medium-fine grind, rinse the paper filter with hot water, pour 40 g of water just off the boil and let the coffee bloom for 30 seconds, then pour the remaining 280 g slowly in circles over two minutes. If it tastes bitter, grind coarser; if it tastes sour, grind finer.';

function input(response: string, extra: Partial<JudgeInput> = {}): JudgeInput {
  return { id: 'x', prompt: PROMPT, response, reference: REFERENCE, endedWithEot: true, ...extra };
}

test('ROUGE-L F1 by hand: LCS over lowercased words', () => {
  // LCS("the cat sat on the mat", "the cat on a mat") = "the cat on mat" = 4; P = 4/6, R = 4/5.
  const f = rougeLF1(wordTokens('The cat sat on the mat'), wordTokens('the cat on a mat'));
  assert.ok(Math.abs(f - (2 * (4 / 6) * (4 / 5)) / (4 / 6 + 4 / 5)) < 1e-12);
  assert.equal(rougeLF1(wordTokens('alpha beta'), wordTokens('gamma delta')), 0);
  assert.equal(rougeLF1(wordTokens('Same words here'), wordTokens('same WORDS here')), 1);
});

test('degeneration: repetition lowers the score', () => {
  assert.equal(degenerationScore(wordTokens('one two three four five six seven')), 1);
  const looped = degenerationScore(wordTokens('the coffee is good '.repeat(10)));
  assert.ok(looped < 0.3, `looped text scored ${looped}`);
});

test('structure detection: lists, headings, paragraphs', () => {
  assert.deepEqual(structureOf(REFERENCE), { list: true, heading: false, paragraphs: true });
  assert.deepEqual(structureOf('## Steps\n- grind\n- pour'), { list: true, heading: true, paragraphs: false });
  assert.deepEqual(structureOf(PROSE), { list: false, heading: false, paragraphs: false });
});

test('the reference itself outscores truncated, repetitive and empty responses', () => {
  const reference = rubricJudgment(input(REFERENCE));
  const truncated = rubricJudgment(input(REFERENCE.slice(0, 90), { endedWithEot: false }));
  const repetitive = rubricJudgment(input('Grind the beans and pour the water. '.repeat(15)));
  const empty = rubricJudgment(input(''));
  const offTopic = rubricJudgment(input('The French Revolution began in 1789 with the storming of the Bastille and ended with the rise of Napoleon.'));
  assert.equal(reference.score, 6);
  assert.equal(empty.score, 1);
  for (const [name, j] of Object.entries({ truncated, repetitive, empty, offTopic })) {
    assert.ok(j.score! < reference.score!, `${name} scored ${j.score}, not below the reference's ${reference.score}`);
  }
  assert.ok(truncated.subscores!.completeness! < reference.subscores!.completeness!);
  assert.ok(repetitive.subscores!.degeneration! < 0.5);
  assert.ok(offTopic.subscores!.content! < 0.1);
});

test('organisation: a structured answer beats the same words as prose when the reference has a list', () => {
  const prose = rubricJudgment(input(PROSE));
  const listed = rubricJudgment(input(REFERENCE));
  assert.ok(listed.subscores!.organisation! > prose.subscores!.organisation!);
  // Without a reference: full marks for prose, half for a long unbroken run-on.
  assert.equal(rubricJudgment({ id: 'a', prompt: PROMPT, response: PROSE }).subscores!.organisation, 1);
  const runOn = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
  assert.equal(rubricJudgment({ id: 'a', prompt: PROMPT, response: runOn }).subscores!.organisation, 0.5);
});

test('without a reference, content is omitted and the weights renormalise', () => {
  const j = rubricJudgment({ id: 'a', prompt: PROMPT, response: PROSE, endedWithEot: true });
  assert.deepEqual(Object.keys(j.subscores!).sort(), ['completeness', 'degeneration', 'organisation']);
  const s = j.subscores!;
  const mean = (0.2 * s.completeness! + 0.2 * s.degeneration! + 0.1 * s.organisation!) / 0.5;
  assert.equal(j.score, 1 + Math.round(5 * mean));
});

test('the score follows the documented formula from the stored sub-scores', () => {
  for (const response of [REFERENCE, PROSE, REFERENCE.slice(0, 120), 'coffee '.repeat(40)]) {
    const j = rubricJudgment(input(response));
    const s = j.subscores!;
    const mean = 0.5 * s.content! + 0.2 * s.completeness! + 0.2 * s.degeneration! + 0.1 * s.organisation!;
    assert.equal(j.score, 1 + Math.round(5 * mean), j.reason);
    for (const v of Object.values(s)) assert.ok(v >= 0 && v <= 1);
  }
  assert.match(RUBRIC_FORMULA, /content 0\.5, completeness 0\.2, degeneration 0\.2, organisation 0\.1/);
});

test('rubric judge: deterministic, always valid, scores in 1..6, describe says proxy', async () => {
  const judge = createJudge({ kind: 'rubric' }, {});
  assert.match(judge.describe(), /proxy for human or LLM judgment/);
  const responses = [REFERENCE, PROSE, '', '   ', 'ok', 'a b a b a b a b a b a b', REFERENCE.repeat(5), '# Title\n\n- x'];
  for (const r of responses) {
    const a = await judge.judge(input(r));
    const b = await judge.judge(input(r));
    assert.deepEqual(a, b);
    assert.equal(a.valid, true);
    assert.ok(Number.isInteger(a.score) && a.score! >= 1 && a.score! <= 6, `score ${a.score}`);
  }
  assert.deepEqual(judge.stats(), { requests: 0, cacheHits: 0, invalid: 0 });
});

test('real data: LIMA references score themselves high, truncations and mismatched answers lower', async (t) => {
  const file = path.resolve('../shared/data/lima/lima_train.alpaca.json');
  if (!existsSync(file)) {
    t.skip(`real data absent: ${file}`);
    return;
  }
  const records = (JSON.parse(await fs.readFile(file, 'utf8')) as Array<{ instruction: string; output: string }>).slice(0, 200);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const self: number[] = [];
  const truncated: number[] = [];
  const mismatched: number[] = [];
  for (let i = 0; i < records.length; i++) {
    const { instruction, output } = records[i]!;
    const base = { id: String(i), prompt: instruction, reference: output };
    self.push(rubricJudgment({ ...base, response: output, endedWithEot: true }).score!);
    truncated.push(rubricJudgment({ ...base, response: output.slice(0, Math.floor(output.length / 5)), endedWithEot: false }).score!);
    mismatched.push(rubricJudgment({ ...base, response: records[(i + 1) % records.length]!.output, endedWithEot: true }).score!);
  }
  t.diagnostic(`LIMA first 200: mean score self ${mean(self).toFixed(2)}, first fifth truncated ${mean(truncated).toFixed(2)}, another example's answer ${mean(mismatched).toFixed(2)}`);
  assert.ok(mean(self) > 5.5);
  assert.ok(mean(truncated) < mean(self) - 1);
  assert.ok(mean(mismatched) < mean(self) - 1);
});
