// Table test of the strict reading of judge replies: replies in the shapes judges really write
// (the template's format, GPT-4 / Claude / Llama chain-of-thought, MT-Bench "[[n]]", Prometheus
// "[RESULT] n", G-Eval, JSON), each with the expected score or the expected invalid reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readChoice, parseChoice, reasoningOf, INVALID_REASONS, type InvalidReason, type ReplyMeta } from '../../src/judge/index.ts';

interface Row {
  name: string;
  reply: string;
  meta?: ReplyMeta;
  expect: number | InvalidReason;
}

const ROWS: Row[] = [
  // --- the issue's examples ---
  { name: 'issue: "5 out of 6"', reply: '5 out of 6', expect: 5 },
  { name: 'issue: give it a 4 with the scale in parentheses', reply: 'I would give it a 4 (on a 1 to 6 scale)', expect: 4 },
  { name: 'issue: MT-Bench rating', reply: 'The answer defines the word and gives an example.\n\nRating: [[5]]', expect: 5 },
  { name: 'issue: bold labelled score', reply: '**Score: 4**\n\nThe response is relevant and complete but adds little explanation.', expect: 4 },
  {
    name: 'issue: the choice on the last line (the template format)',
    reply: 'Step 1: The task asks what "ephemeral" means.\nStep 2: The submission gives a correct definition and 2 examples.\nStep 3: It has no headings or lists, so it cannot be a 6.\n5',
    expect: 5,
  },
  { name: 'issue: a choice followed by its explanation', reply: '4\n\nThe submission answers the question clearly but lacks detail; it mentions 2 senses only.', expect: 4 },
  { name: 'issue: truncated at the token limit', reply: 'Step 1 ... it lists 3 items and', meta: { finishReason: 'length' }, expect: 'truncated' },
  { name: 'issue: refusal mentioning a count', reply: "I'm sorry, I can't grade this; it mentions 2 people", expect: 'refusal' },
  { name: 'issue: two different choices', reply: 'Score: 4\n\nOn reflection the organisation is good.\n5', expect: 'ambiguous' },
  { name: 'issue: no choice, only incidental numbers', reply: 'The response mentions 2 people and lists 3 items, in 1 paragraph.', expect: 'no-choice' },

  // --- valid shapes ---
  {
    name: 'GPT-4 style chain of thought, rubric levels discussed, bare last line',
    reply:
      'To evaluate, I compare the submission with each level.\n\n1. Relevance: the submission addresses the question directly.\n2. Completeness: it gives the definition and one example.\n3. Organisation: level 6 requires headings or bullet points, which are absent; level 2 would be too harsh.\n\nThe best fit is "5".\n\n5',
    expect: 5,
  },
  {
    name: 'Claude style with markdown headings and a bold final choice',
    reply: '## Reasoning\n\n- The answer is accurate.\n- It is concise (3 sentences).\n- It lacks structure.\n\n## Choice\n\n**4**',
    expect: 4,
  },
  { name: 'Prometheus feedback and [RESULT]', reply: 'Feedback: The response is accurate and detailed, though not organised with headings. [RESULT] 5', expect: 5 },
  { name: 'G-Eval aspect line', reply: '- Helpfulness: 3', expect: 3 },
  { name: 'JSON output', reply: '{"reasoning": "Clear and complete, 2 examples.", "score": 5}', expect: 5 },
  { name: 'XML tags', reply: '<reasoning>Relevant but thin.</reasoning>\n<score>3</score>', expect: 3 },
  { name: 'markdown table', reply: '| Criterion | Value |\n|---|---|\n| **Score** | **6** |', expect: 6 },
  { name: 'labelled with the scale in parentheses', reply: 'Helpfulness score (1-6): 2\nThe answer is off topic.', expect: 2 },
  { name: 'labelled ratio', reply: 'Overall rating: 5/6 - very helpful, with a useful analogy.', expect: 5 },
  { name: 'number with its level name', reply: 'After weighing the criteria:\n\n**5 (Very helpful)**', expect: 5 },
  { name: 'prose: scale note before the choice', reply: 'On a scale of 1 to 6, I would rate this response a 3 because it lacks detail.', expect: 3 },
  { name: 'prose: final answer', reply: 'The response fits the description of level 4 best. Therefore, my final answer is 4.', expect: 4 },
  { name: 'prose: the submission deserves', reply: 'Based on the above analysis, the submission deserves a 6.', expect: 6 },
  { name: 'the same choice stated three times', reply: 'Score: 5\n\nExplanation: the response is insightful. Therefore the score is 5.\n\n5', expect: 5 },
  { name: 'a possible and a negated choice are not choices', reply: 'I could give it a 5, but I would not give it a 6 without headings. I give it a 4.', expect: 4 },
  { name: 'a hypothetical choice is not a choice', reply: 'This would be a 6 if it had headings.\n\n5', expect: 5 },
  { name: 'a list heading "Evaluation:" is not a choice', reply: 'Evaluation:\n1. Relevance: good\n2. Detail: thin\n\nFinal Score: 3 out of 6', expect: 3 },
  { name: 'counts and a hyphenated step next to the choice', reply: 'It is a 3-step guide with 4 examples. I rate this response 5/6.', expect: 5 },
  { name: 'word number in a label', reply: 'Final verdict: Six', expect: 6 },
  { name: 'a cautious reply that still states one choice is read', reply: 'I cannot verify every fact, but the response is well organised and relevant.\nScore: 5', expect: 5 },

  // --- review of issue #12: a scale written after the value (off-scale unless it is 6) ---
  { name: 'trailing scale: (out of 5)', reply: 'Score: 5 (out of 5)', expect: 'out-of-range' },
  { name: 'trailing scale: on a scale from 1 to 5', reply: 'Score: 3 on a scale from 1 to 5', expect: 'out-of-range' },
  { name: 'trailing scale: (1-5 scale) after a weak label', reply: 'Overall: 4 (1-5 scale)', expect: 'out-of-range' },
  { name: 'trailing scale: (on a scale of 1-10)', reply: 'Score: 4 (on a scale of 1-10)', expect: 'out-of-range' },
  { name: 'trailing scale: a 10-point scale after a verb', reply: "I'd give it 4 on a 10-point scale.", expect: 'out-of-range' },
  { name: 'trailing scale: stars out of 5', reply: 'Rating: 3 stars out of 5', expect: 'out-of-range' },
  { name: 'trailing scale: /5 after a bold value', reply: 'Score: **4**/5', expect: 'out-of-range' },
  { name: 'leading scale note in a label: (out of 10)', reply: 'Rating (out of 10): 4', expect: 'out-of-range' },
  { name: 'scale before the verb in its clause', reply: "On a 1-10 scale, I'd give it a 4.", expect: 'out-of-range' },
  { name: 'scale note between the verb and the value', reply: 'I would rate it, on a scale of 1 to 10, a 4.', expect: 'out-of-range' },
  { name: 'a count before the verb is not a scale', reply: "It covers 2 out of 5 steps, so I'd give it a 4.", expect: 4 },
  { name: 'trailing scale of 6 is accepted: (out of 6)', reply: 'Score: 4 (out of 6)', expect: 4 },
  { name: 'trailing scale of 6 is accepted: on a scale of 1 to 6', reply: 'Score: 4 on a scale of 1 to 6', expect: 4 },
  { name: 'a count later in the sentence is not a scale', reply: 'Score: 4 - it covers 2 out of 5 steps', expect: 4 },
  { name: 'a range of counts after the value is not a scale', reply: 'Score: 4, with 1-2 paragraphs missing', expect: 4 },
  // --- review of issue #12: a revised or final choice ---
  {
    name: 'revised: initially 5, then "Final: 4"',
    reply: 'Initially I would give it a 5, but on reflection the missing caveat matters. Final: 4',
    expect: 4,
  },
  { name: 'revised: "at first" after the value', reply: "I'd give it a 5 at first glance, but the caveat is missing. Score: 4", expect: 4 },
  { name: 'conditional: with more examples, then "As it stands: 4"', reply: "I'd give it a 5 with more examples. As it stands: 4", expect: 4 },
  { name: 'revised with an arrow', reply: 'Score: 3 → after reconsidering, 4.', expect: 4 },
  { name: 'revised with an ASCII arrow', reply: 'Rating: 5 -> 4', expect: 4 },
  {
    name: 'a choice for one criterion is not the choice',
    reply: 'I would give it a 6 for accuracy, but for helpfulness overall it is closer to 4.',
    expect: 'no-choice',
  },
  { name: 'a criterion named before the choice', reply: 'For clarity alone I would give it a 6. Overall score: 4', expect: 4 },
  { name: 'a reason after "for its" is not a criterion condition', reply: 'I give it a 5 for its clear examples.', expect: 5 },
  // --- review of issue #12: "is:" in a prose label ---
  { name: 'prose label with a colon: My score is: 4.', reply: 'My score is: 4.', expect: 4 },
  { name: 'prose label with a colon: My final score is: 4', reply: 'My final score is: 4', expect: 4 },
  { name: 'prose label with a colon and bold: The final score is: **4**', reply: 'The final score is: **4**', expect: 4 },
  // --- review of issue #12: quoted text, code and bare lists are not the judge's choice line ---
  { name: 'a number alone in a code fence', reply: 'The code prints:\n```\n5\n```\nwhich is correct. Score: 4', expect: 4 },
  { name: 'a number alone in a quote', reply: 'The response says:\n> 3\n\nIt explains the reason well. Score: 5', expect: 5 },
  { name: 'a bare list of numbers after the score', reply: 'Score: 5\n\nThe steps are:\n1\n2\n3', expect: 5 },
  { name: 'a single bare line after a score still contradicts it', reply: 'Score: 4\n\nThe steps are fine.\n5', expect: 'ambiguous' },
  { name: 'a quoted line only is no choice', reply: 'The response says:\n> 3', expect: 'no-choice' },

  // --- invalid shapes ---
  { name: 'truncated even after a choice was written', reply: 'Score: 4\nExplanation: the response covers the definition and', meta: { finishReason: 'length' }, expect: 'truncated' },
  { name: 'hedge "4 or 5"', reply: "It's between levels; I'd give it a 4 or 5.", expect: 'ambiguous' },
  { name: 'hedged range in a label', reply: 'Rating: 3-4', expect: 'ambiguous' },
  { name: 'two MT-Bench brackets', reply: 'First pass: [[3]]. After rereading: [[4]]', expect: 'ambiguous' },
  { name: 'number and level name disagree', reply: '5 - Helpful', expect: 'ambiguous' },
  { name: 'prose choice contradicts the last line', reply: "I'd give this a 3 overall.\n\n4", expect: 'ambiguous' },
  { name: 'another scale', reply: 'Score: 8/10', expect: 'out-of-range' },
  { name: 'out of range', reply: 'Rating: 7 - exceptional', expect: 'out-of-range' },
  { name: 'half point', reply: 'Score: 4.5', expect: 'out-of-range' },
  { name: 'zero', reply: 'Choice: 0', expect: 'out-of-range' },
  { name: 'apology and inability', reply: 'As an AI language model, I am unable to provide a rating for this content.', expect: 'refusal' },
  { name: 'cannot evaluate', reply: 'I cannot evaluate this submission because the task is missing.', expect: 'refusal' },
  { name: 'provider refusal field', reply: '', meta: { refusal: "I'm sorry, I can't help with that." }, expect: 'refusal' },
  { name: 'content filter', reply: '', meta: { finishReason: 'content_filter' }, expect: 'refusal' },
  { name: 'empty reply', reply: '', expect: 'no-choice' },
  { name: 'the scale only', reply: 'On a scale of 1 to 6, the response is quite helpful (see criteria 1-6).', expect: 'no-choice' },
  { name: 'a ratio that counts', reply: 'It covers 2 out of 6 sub-questions and 10/10 of the keywords.', expect: 'no-choice' },
  { name: 'steps only', reply: 'Step 1: read the task. Step 2: read the submission. Step 3: compare with criterion "4".', expect: 'no-choice' },
  { name: 'a decimal in passing', reply: 'Roughly 3.5 overall, I think.', expect: 'no-choice' },
  { name: 'counts after a grading verb', reply: "I'd say the response covers 3 topics and gives 2 examples.", expect: 'no-choice' },
  { name: 'a number the submission states is not a choice', reply: 'The submission says the answer is 4, which is correct, in 2 sentences.', expect: 'no-choice' },
  { name: 'comparison, not a choice', reply: 'I would rate it higher than 3 but I am not sure.', expect: 'no-choice' },
];

test(`the table holds at least 30 replies (${ROWS.length}), every reason among them`, () => {
  assert.ok(ROWS.length >= 30);
  for (const reason of Object.keys(INVALID_REASONS)) assert.ok(ROWS.some((r) => r.expect === reason), `no row expects ${reason}`);
});

for (const row of ROWS) {
  test(`reply: ${row.name}`, () => {
    const reading = readChoice(row.reply, row.meta);
    if (typeof row.expect === 'number') {
      assert.equal(reading.score, row.expect, `expected ${row.expect}, got ${reading.invalidReason}: ${reading.detail}`);
      assert.equal(reading.invalidReason, undefined);
    } else {
      assert.equal(reading.score, null, `expected invalid (${row.expect}), got score ${reading.score}`);
      assert.equal(reading.invalidReason, row.expect, reading.detail);
      assert.ok(reading.detail && reading.detail.length > 0);
    }
    if (!row.meta) assert.equal(parseChoice(row.reply), typeof row.expect === 'number' ? row.expect : null);
  });
}

test('the invalid detail names what was found', () => {
  const ambiguous = readChoice('Score: 4\n5');
  assert.match(ambiguous.detail!, /2 different choices: 4 \("Score: 4"\), 5 \("5"\)/);
  assert.match(readChoice('Score: 8/10').detail!, /8\/10/);
  assert.match(readChoice('x', { finishReason: 'length' }).detail!, /finish_reason "length"/);
});

test('reasoningOf drops a final choice line of any decorated form only', () => {
  assert.equal(reasoningOf('Relevant.\nDetailed.\n**Score: 5**\n'), 'Relevant.\nDetailed.');
  assert.equal(reasoningOf('Relevant, 3 items.\nIt lists 3 items'), 'Relevant, 3 items.\nIt lists 3 items');
});

test('long adversarial replies are read (the patterns stay linear on repeated fragments)', () => {
  const n = 5000;
  assert.equal(readChoice(`Score: 4 ${'→ '.repeat(n)}`).score, 4);
  assert.equal(readChoice(`${'Initially for accuracy '.repeat(n)}Score: 4`).invalidReason, 'no-choice');
  assert.equal(readChoice(`${'1\n'.repeat(n)}Score: 5`).score, 5);
  assert.equal(readChoice(`${'```\n'.repeat(n + 1)}5\nScore: 5`).score, 5);
  assert.equal(readChoice(`Score: 4 ${'on a '.repeat(n)}scale of 1 to 10`).score, 4);
  assert.equal(readChoice(`I would give it ${'a '.repeat(n)}4 ${'(out of '.repeat(n)}`).invalidReason, 'no-choice');
  assert.equal(readChoice(`${'Score: 3 -> '.repeat(n)}4`).invalidReason, 'ambiguous'); // 3s revised only by the last arrow
});
