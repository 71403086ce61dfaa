// The LLM judge against a real HTTP server on 127.0.0.1 (port 0): no fetch mocks.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CACHE_VERSION, createJudge, judgeAll, JudgmentCache, judgmentCacheKey, loadTemplate, validateJudgeConfig, type JudgeInput, type LlmJudgeConfig } from '../../src/judge/index.ts';

process.env.LIMA_QUIET = '1';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

interface TestServer {
  baseUrl: string;
  /** Handlers for the next requests, in order; when empty, `fallback` answers. */
  queue: Handler[];
  requests: Array<{ at: number; headers: http.IncomingHttpHeaders; body: string }>;
  maxInFlight: number;
  close(): Promise<void>;
}

/**
 * Replies like a chat-completions API; the judge's choice is read from "SCORE=n" in the
 * submission. SCORE=garbage: a refusal; SCORE=truncated: a reply cut off at the token limit
 * (finish_reason "length"); SCORE=unfinished: the same text ending normally (finish_reason "stop").
 */
const reply: Handler = (_req, res, body) => {
  const content: string = JSON.parse(body).messages[0].content;
  const m = /\[Submission\]: [\s\S]*?SCORE=(\w+)/.exec(content);
  const choice = m ? m[1] : '3';
  const cut = 'Step 1: the task asks for a definition.\nStep 2: it lists 3 items and';
  const text =
    choice === 'garbage' ? 'I am unable to grade this.' : choice === 'truncated' || choice === 'unfinished' ? cut : `The submission is relevant.\nIt is detailed.\n${choice}`;
  const finish = choice === 'truncated' ? 'length' : 'stop';
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }], usage: { prompt_tokens: 100, completion_tokens: 7 } }),
  );
};

function status(code: number, message: string, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ error: { message } }));
  };
}

const hang: Handler = () => {
  // Never answers: the client's timeout has to fire.
};

const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function startServer(fallback: Handler = reply): Promise<TestServer> {
  let inFlight = 0;
  const state: TestServer = { baseUrl: '', queue: [], requests: [], maxInFlight: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      state.requests.push({ at: Date.now(), headers: req.headers, body });
      inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, inFlight);
      res.on('close', () => inFlight--);
      if (req.url !== '/v1/chat/completions' || req.method !== 'POST') return status(404, `no route ${req.method} ${req.url}`)(req, res, body);
      const handler = state.queue.shift() ?? fallback;
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  servers.push(state);
  return state;
}

function llmConfig(server: TestServer, extra: Record<string, unknown> = {}): LlmJudgeConfig {
  return validateJudgeConfig({ kind: 'llm', baseUrl: server.baseUrl, model: 'judge-model', maxRetries: 3, timeoutMs: 5000, ...extra }, 'test') as LlmJudgeConfig;
}

const tmp = () => fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
const input = (id: string, score: string | number, extra: Partial<JudgeInput> = {}): JudgeInput => ({
  id,
  prompt: `Question ${id}: explain {response} placeholders`,
  response: `Answer ${id}. SCORE=${score}`,
  reference: `Reference ${id}`,
  ...extra,
});

test('a judgment: request shape, parsed score, reasoning, usage', async () => {
  const server = await startServer();
  const judge = createJudge(llmConfig(server), {});
  const j = await judge.judge(input('a', 5));
  assert.equal(j.score, 5);
  assert.equal(j.valid, true);
  assert.equal(j.reason, 'The submission is relevant.\nIt is detailed.');
  assert.deepEqual(j.usage, { promptTokens: 100, completionTokens: 7 });
  const sent = JSON.parse(server.requests[0]!.body);
  assert.equal(sent.model, 'judge-model');
  assert.equal(sent.temperature, 0);
  assert.equal(sent.messages.length, 1);
  assert.equal(sent.messages[0].role, 'user');
  const content: string = sent.messages[0].content;
  assert.ok(content.includes('[Task]: Question a: explain {response} placeholders'), 'the {response} inside the prompt stays literal');
  assert.ok(content.includes('[Submission]: Answer a. SCORE=5'));
  assert.ok(content.includes('Reference a'));
  assert.equal(server.requests[0]!.headers.authorization, undefined, 'no key configured, no Authorization header');
  assert.match(judge.describe(), /judge-model/);
});

test('an unparseable reply is an invalid judgment (score null), counted', async () => {
  const server = await startServer();
  const judge = createJudge(llmConfig(server), {});
  const j = await judge.judge(input('g', 'garbage'));
  assert.equal(j.valid, false);
  assert.equal(j.score, null);
  assert.equal(j.raw, 'I am unable to grade this.');
  assert.equal(j.invalidReason, 'refusal');
  assert.match(j.reason, /^invalid \(refusal\): /);
  assert.equal(judge.stats().invalid, 1);
});

test('finish_reason "length": a truncated reply is invalid (truncated), never the digit it happens to contain', async () => {
  const server = await startServer();
  const judge = createJudge(llmConfig(server), {});
  const cut = await judge.judge(input('t', 'truncated'));
  assert.equal(cut.raw, 'Step 1: the task asks for a definition.\nStep 2: it lists 3 items and');
  assert.equal(cut.score, null);
  assert.equal(cut.valid, false);
  assert.equal(cut.invalidReason, 'truncated');
  assert.match(cut.reason, /^invalid \(truncated\): .*finish_reason "length"/);
  // The same text with finish_reason "stop" states no choice: invalid for that reason instead.
  const unfinished = await judge.judge(input('u', 'unfinished'));
  assert.equal(unfinished.score, null);
  assert.equal(unfinished.invalidReason, 'no-choice');
  assert.equal(judge.stats().invalid, 2);
  // A valid judgment carries no reason.
  const ok = await judge.judge(input('v', 4));
  assert.equal(ok.score, 4);
  assert.equal('invalidReason' in ok, false);
});

test('500 then success: one judgment after two requests', async () => {
  const server = await startServer();
  server.queue.push(status(500, 'overloaded'));
  const judge = createJudge(llmConfig(server), { backoffBaseMs: 5 });
  const j = await judge.judge(input('a', 4));
  assert.equal(j.score, 4);
  assert.equal(server.requests.length, 2);
  assert.equal(judge.stats().requests, 2);
});

test('a timeout then success', async () => {
  const server = await startServer();
  server.queue.push(hang);
  const judge = createJudge(llmConfig(server, { timeoutMs: 300 }), { backoffBaseMs: 5 });
  const j = await judge.judge(input('a', 6));
  assert.equal(j.score, 6);
  assert.equal(server.requests.length, 2);
});

test('429 with Retry-After: 1 is honoured before the retry', async () => {
  const server = await startServer();
  server.queue.push(status(429, 'slow down', { 'retry-after': '1' }));
  const judge = createJudge(llmConfig(server), { backoffBaseMs: 1 });
  const j = await judge.judge(input('a', 2));
  assert.equal(j.score, 2);
  assert.equal(server.requests.length, 2);
  const gap = server.requests[1]!.at - server.requests[0]!.at;
  assert.ok(gap >= 900, `retried after ${gap} ms, before the server's Retry-After of 1 s`);
});

test('400 fails at once with the status and the server message', async () => {
  const server = await startServer();
  server.queue.push(status(400, 'model "judge-model" does not exist'));
  const judge = createJudge(llmConfig(server, { maxRetries: 5 }), { backoffBaseMs: 1 });
  await assert.rejects(judge.judge(input('bad-1', 3)), (err: Error) => {
    assert.match(err.message, /bad-1/);
    assert.match(err.message, /HTTP 400/);
    assert.match(err.message, /model "judge-model" does not exist/);
    return true;
  });
  assert.equal(server.requests.length, 1);
});

test('after maxRetries the judgment throws, naming the id and the last error', async () => {
  const server = await startServer(status(503, 'down for maintenance'));
  const judge = createJudge(llmConfig(server, { maxRetries: 2 }), { backoffBaseMs: 1 });
  await assert.rejects(judge.judge(input('x-9', 3)), /x-9: gave up after 3 attempts.*HTTP 503: down for maintenance/);
  assert.equal(server.requests.length, 3);
});

test('a refused connection is retried and then reported', async () => {
  const server = await startServer();
  const baseUrl = server.baseUrl;
  await server.close();
  const judge = createJudge(validateJudgeConfig({ kind: 'llm', baseUrl, model: 'm', maxRetries: 1 }, 't'), { backoffBaseMs: 1 });
  await assert.rejects(judge.judge(input('n', 3)), /n: gave up after 2 attempts.*network error: ECONNREFUSED/);
  assert.equal(judge.stats().requests, 2);
});

test('the API key goes only into the Bearer header: never into the cache, errors or stats', async () => {
  const secret = 'sk-lima-test-4f9a2c7e1b';
  const server = await startServer();
  const cacheDir = await tmp();
  process.env.LIMA_TEST_JUDGE_KEY = secret;
  try {
    const judge = createJudge(llmConfig(server, { apiKeyEnv: 'LIMA_TEST_JUDGE_KEY' }), { cacheDir });
    const j = await judge.judge(input('k', 5));
    assert.equal(server.requests[0]!.headers.authorization, `Bearer ${secret}`);
    assert.ok(!JSON.stringify(j).includes(secret));
    const files = await listFiles(cacheDir);
    assert.equal(files.length, 1);
    for (const f of files) assert.ok(!(await fs.readFile(f, 'utf8')).includes(secret), `${f} contains the key`);
    assert.ok(!judge.describe().includes(secret));
    // A server that echoes the key in its error: the message is redacted.
    server.queue.push(status(401, `invalid key ${secret}`));
    await assert.rejects(judge.judge(input('k2', 5)), (err: Error) => err.message.includes('HTTP 401') && !err.message.includes(secret));
  } finally {
    delete process.env.LIMA_TEST_JUDGE_KEY;
  }
});

test('apiKeyEnv naming an unset variable fails with the variable name and sends nothing', async () => {
  const server = await startServer();
  delete process.env.LIMA_TEST_UNSET_KEY;
  const judge = createJudge(llmConfig(server, { apiKeyEnv: 'LIMA_TEST_UNSET_KEY' }), {});
  await assert.rejects(judge.judge(input('u', 4)), /LIMA_TEST_UNSET_KEY/);
  assert.equal(server.requests.length, 0);
});

test('cache: a rerun makes no requests and gives identical judgments; a changed template re-judges', async () => {
  const server = await startServer();
  const cacheDir = await tmp();
  const inputs = [input('a', 5), input('b', 2), input('c', 'garbage'), input('d', 6, { reference: undefined })];
  const first = createJudge(llmConfig(server), { cacheDir });
  const run1 = await judgeAll(first, inputs, { concurrency: 2 });
  assert.equal(server.requests.length, 4);
  assert.deepEqual(run1.map((j) => j.score), [5, 2, null, 6]);

  const second = createJudge(llmConfig(server), { cacheDir });
  const run2 = await judgeAll(second, inputs, { concurrency: 2 });
  assert.equal(server.requests.length, 4, 'the rerun made requests');
  assert.deepEqual(second.stats(), { requests: 0, cacheHits: 4, invalid: 1 });
  assert.deepEqual(run2.map(({ cached: _c, ...rest }) => rest), run1.map(({ cached: _c, ...rest }) => rest));
  assert.ok(run2.every((j) => j.cached === true));

  const templateDir = await tmp();
  const templatePath = path.join(templateDir, 'short.txt');
  await fs.writeFile(templatePath, '[BEGIN DATA] [Task]: {prompt} [Submission]: {response} [END DATA] Rate 1-6, choice on the last line.');
  const third = createJudge(llmConfig(server, { templatePath }), { cacheDir });
  await judgeAll(third, inputs, { concurrency: 2 });
  assert.equal(server.requests.length, 8, 'a changed template must re-judge');
  assert.equal(third.stats().cacheHits, 0);
});

test('cache: an entry of the previous version (lenient reading) is not reused; it is re-judged and overwritten', async () => {
  const server = await startServer();
  const cacheDir = await tmp();
  const config = llmConfig(server);
  const inp = input('old', 'truncated');
  const key = judgmentCacheKey({ model: config.model, templateHash: loadTemplate(config.templatePath).hash, prompt: inp.prompt, response: inp.response, reference: inp.reference });
  const cache = new JudgmentCache(cacheDir);
  // What version 1 stored for this reply: the lenient reading scored the "3" of "lists 3 items".
  const v1 = { version: 1, key, model: config.model, templateHash: 'x', judgment: { score: 3, valid: true, raw: 'Step 1 ... it lists 3 items and', reason: 'Step 1 ...' } };
  await fs.mkdir(path.dirname(cache.fileFor(key)), { recursive: true });
  await fs.writeFile(cache.fileFor(key), JSON.stringify(v1));
  assert.equal(await cache.get(key), undefined, 'a version-1 entry must read as absent');

  const judge = createJudge(config, { cacheDir });
  const j = await judge.judge(inp);
  assert.equal(server.requests.length, 1, 'the old entry must be re-judged');
  assert.equal(judge.stats().cacheHits, 0);
  assert.equal(j.score, null);
  assert.equal(j.invalidReason, 'truncated');
  const stored = JSON.parse(await fs.readFile(cache.fileFor(key), 'utf8'));
  assert.equal(stored.version, CACHE_VERSION);
  assert.equal(CACHE_VERSION, 2);
  assert.equal(stored.judgment.invalidReason, 'truncated');

  // The rewritten entry is reused, reason included.
  const again = createJudge(config, { cacheDir });
  const k = await again.judge(inp);
  assert.equal(server.requests.length, 1);
  assert.equal(k.cached, true);
  assert.equal(k.invalidReason, 'truncated');
  // An invalid entry without a reason (hand-edited or corrupt) is not trusted either.
  await fs.writeFile(cache.fileFor(key), JSON.stringify({ ...stored, judgment: { ...stored.judgment, invalidReason: undefined } }));
  assert.equal(await cache.get(key), undefined);
});

test('judgeAll keeps input order and at most `concurrency` requests in flight', async () => {
  const delayed: Handler = (req, res, body) => setTimeout(() => reply(req, res, body), 30);
  const server = await startServer(delayed);
  const judge = createJudge(llmConfig(server), {});
  const inputs = Array.from({ length: 10 }, (_, i) => input(`i${i}`, (i % 6) + 1));
  const seen: number[] = [];
  const results = await judgeAll(judge, inputs, { concurrency: 3, onProgress: (done) => seen.push(done) });
  assert.deepEqual(results.map((j) => j.score), inputs.map((_, i) => (i % 6) + 1));
  assert.ok(server.maxInFlight <= 3, `max in flight ${server.maxInFlight}`);
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

test('judgeAll stops on the first failure and reports it', async () => {
  const server = await startServer();
  server.queue.push(status(400, 'bad request body'));
  const judge = createJudge(llmConfig(server), {});
  await assert.rejects(judgeAll(judge, [input('a', 1), input('b', 2), input('c', 3)], { concurrency: 1 }), /a: HTTP 400 .*bad request body/);
  assert.equal(server.requests.length, 1);
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else out.push(full);
  }
  return out;
}
