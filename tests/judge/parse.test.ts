import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseChoice, reasoningOf, renderTemplate, loadTemplate, validateJudgeConfig, defaultJudgeConfig, parseRetryAfter } from '../../src/judge/index.ts';
import { ConfigError } from '../../src/util/validate.ts';

test('parseChoice reads the last line when it is a choice, with decorations', () => {
  assert.equal(parseChoice('The answer is relevant.\nIt lacks detail.\n3'), 3);
  assert.equal(parseChoice('reasoning 2 things\n\n  5  \n\n'), 5);
  assert.equal(parseChoice('reasoning\n**6**'), 6);
  assert.equal(parseChoice('reasoning\n"4"'), 4);
  assert.equal(parseChoice('reasoning\nChoice: 5'), 5);
  assert.equal(parseChoice('reasoning\n5.'), 5);
  assert.equal(parseChoice('reasoning\n**Final answer: 2**'), 2);
  // The last line wins over earlier digits.
  assert.equal(parseChoice('Level 6 needs headings; level 2 fits poorly.\n4'), 4);
});

test('parseChoice reads explicit statements, not the last standalone digit', () => {
  assert.equal(parseChoice('I would rate this a 4 because it is detailed. Thanks!'), 4);
  assert.equal(parseChoice('Between 2 and 5, I pick 5 overall, final.'), 5);
  // Ranges, numbers, decimals and ratios are not choices.
  assert.equal(parseChoice('On the scale 1-6 it is a 3 for sure, not 10.'), 3);
  assert.equal(parseChoice('It deserves 10 out of 10.'), null);
  assert.equal(parseChoice('Roughly 3.5 overall'), null);
  assert.equal(parseChoice('I give 5/10'), null);
  assert.equal(parseChoice('Like gpt4 would say: great'), null);
  assert.equal(parseChoice('Choice: 7'), null);
  // A digit merely standing alone in prose is no longer read (it used to be: "... 3 items" -> 3).
  assert.equal(parseChoice('The answer has 3 parts, I think 2 are fine'), null);
});

test('parseChoice: garbage and empty replies are invalid (null), never 0', () => {
  assert.equal(parseChoice(''), null);
  assert.equal(parseChoice('   \n\n'), null);
  assert.equal(parseChoice('I cannot evaluate this submission.'), null);
  assert.equal(parseChoice('0'), null);
});

test('reasoningOf drops the final choice line only', () => {
  assert.equal(reasoningOf('Step 1: relevant.\nStep 2: detailed.\n4\n'), 'Step 1: relevant.\nStep 2: detailed.');
  assert.equal(reasoningOf('no choice here'), 'no choice here');
});

test('renderTemplate substitutes in one pass: placeholders inside the prompt stay literal', () => {
  const out = renderTemplate('[Task]: {prompt} *** [Submission]: {response} *** {reference_section}END', {
    prompt: 'Explain {response} and $& and {prompt}',
    response: 'ANSWER',
  });
  assert.equal(out, '[Task]: Explain {response} and $& and {prompt} *** [Submission]: ANSWER *** END');
  const withRef = renderTemplate('{reference_section}|{reference}', { prompt: 'p', response: 'r', reference: 'REF {response}' });
  assert.match(withRef, /^\[Reference answer[^\]]*\]: REF \{response\}\n\*\*\*\n\|REF \{response\}$/);
});

test('the default template is LIMA helpfulness with data markers and six levels', () => {
  const t = loadTemplate();
  for (const needle of ['[BEGIN DATA]', '[Task]: {prompt}', '[Submission]: {response}', '[END DATA]', '"1": "Not helpful', '"6": "Highly helpful', 'step by step', 'last line']) {
    assert.ok(t.text.includes(needle), `template lacks ${needle}`);
  }
  assert.match(t.hash, /^[0-9a-f]{64}$/);
});

test('loadTemplate rejects a template without the {response} placeholder, naming the file', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  const file = path.join(dir, 't.txt');
  await fs.writeFile(file, 'Task: {prompt}');
  assert.throws(() => loadTemplate(file), (err: Error) => err.message.includes(file) && err.message.includes('{response}'));
});

test('a judge template saved with a UTF-8 byte order mark loads without it (same text and hash as without)', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  const plain = path.join(dir, 'plain.txt');
  const withBom = path.join(dir, 'bom.txt');
  await fs.writeFile(plain, 'Task: {prompt}\nAnswer: {response}\n');
  await fs.writeFile(withBom, '\uFEFFTask: {prompt}\nAnswer: {response}\n');
  const a = loadTemplate(plain);
  const b = loadTemplate(withBom);
  assert.equal(b.text, a.text);
  assert.equal(b.hash, a.hash);
});

test('validateJudgeConfig fills llm defaults and rejects bad keys naming them', () => {
  assert.deepEqual(validateJudgeConfig(defaultJudgeConfig, 'x.json: judge'), { kind: 'rubric' });
  assert.deepEqual(validateJudgeConfig({ kind: 'llm', baseUrl: 'http://127.0.0.1:8080/v1/', model: 'm' }, 'w'), {
    kind: 'llm',
    baseUrl: 'http://127.0.0.1:8080/v1',
    model: 'm',
    concurrency: 4,
    timeoutMs: 60000,
    maxRetries: 5,
  });
  assert.throws(() => validateJudgeConfig({ kind: 'llm', baseUrl: 'http://h/v1', model: 'm', temprature: 0 }, 'x.json: judge'), (e: Error) => e instanceof ConfigError && e.message.includes('x.json: judge.temprature'));
  assert.throws(() => validateJudgeConfig({ kind: 'llm', baseUrl: 'http://h/v1', model: 'm', concurrency: 0 }, 'w'), /w\.concurrency: must be >= 1/);
  assert.throws(() => validateJudgeConfig({ kind: 'llm', baseUrl: 'http://h/v1', model: 'm', timeoutMs: '5' }, 'w'), /w\.timeoutMs: expected a number/);
  assert.throws(() => validateJudgeConfig({ kind: 'llm', model: 'm' }, 'w'), /w\.baseUrl/);
  assert.throws(() => validateJudgeConfig({ kind: 'llm', baseUrl: 'ftp://h', model: 'm' }, 'w'), /w\.baseUrl: expected an http/);
  assert.throws(() => validateJudgeConfig({ kind: 'rubric', model: 'm' }, 'w'), /w\.model: unknown key/);
  assert.throws(() => validateJudgeConfig({ kind: 'gpt' }, 'w'), /w\.kind: expected one of rubric, llm/);
});

test('an apiKey in the config is rejected, pointing to apiKeyEnv, without echoing the key', () => {
  const secret = 'sk-test-DO-NOT-PRINT-123456';
  assert.throws(
    () => validateJudgeConfig({ kind: 'llm', baseUrl: 'http://h/v1', model: 'm', apiKey: secret }, 'x.json: judge'),
    (e: Error) => e instanceof ConfigError && e.message.includes('x.json: judge.apiKey') && e.message.includes('apiKeyEnv') && !e.message.includes(secret),
  );
  assert.throws(
    () => validateJudgeConfig({ kind: 'llm', baseUrl: 'http://h/v1', model: 'm', apiKeyEnv: secret }, 'w'),
    (e: Error) => e.message.includes('w.apiKeyEnv') && !e.message.includes(secret),
  );
});

test('parseRetryAfter reads seconds and HTTP dates, capped', () => {
  assert.equal(parseRetryAfter('1', 120000), 1000);
  assert.equal(parseRetryAfter('9999', 5000), 5000);
  assert.equal(parseRetryAfter(null, 5000), undefined);
  assert.equal(parseRetryAfter('soon', 5000), undefined);
  assert.equal(parseRetryAfter(new Date(Date.now() - 10000).toUTCString(), 5000), 0);
});
