// `lima-harness judge` end to end on temp JSONL files: rubric, and llm against a real local server.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { judgeCommand } from '../../src/cli/judge-command.ts';

process.env.LIMA_QUIET = '1';

function capture() {
  const logs: string[] = [];
  const errors: string[] = [];
  return { logs, errors, out: { log: (t: string) => logs.push(t), error: (t: string) => errors.push(t) } };
}

const REFERENCE = 'Steps:\n\n1. Boil water.\n2. Add the pasta and stir.\n3. Drain after nine minutes.';
const rows = [
  { id: 'e1', prompt: 'How do I cook pasta?', response: REFERENCE, reference: REFERENCE, endedWithEot: true },
  { id: 'e2', prompt: 'How do I cook pasta?', response: 'Boil water. Boil water. Boil water. Boil water. Boil water. Boil water.', reference: REFERENCE, endedWithEot: false },
  { id: 'e3', prompt: 'How do I cook pasta?', response: '', reference: REFERENCE, endedWithEot: false },
];

async function writeJsonl(file: string, items: unknown[]): Promise<void> {
  await fs.writeFile(file, items.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

async function readJsonl(file: string): Promise<Array<Record<string, unknown>>> {
  return (await fs.readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
}

test('judge --judge rubric: one line per input and a summary line', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  const inFile = path.join(dir, 'gen.jsonl');
  const outFile = path.join(dir, 'judged.jsonl');
  await writeJsonl(inFile, rows);
  const c = capture();
  assert.equal(await judgeCommand(['--judge', 'rubric', '--in', inFile, '--out', outFile], c.out), 0, c.errors.join('\n'));
  const out = await readJsonl(outFile);
  assert.deepEqual(out.map((r) => r.id), ['e1', 'e2', 'e3']);
  for (const r of out) assert.deepEqual(Object.keys(r).sort(), ['id', 'raw', 'reason', 'score', 'subscores', 'valid']);
  assert.equal(out[0]!.score, 6);
  assert.equal(out[2]!.score, 1);
  assert.ok((out[1]!.score as number) < 6);
  assert.equal(c.logs.length, 1);
  const summary = JSON.parse(c.logs[0]!);
  const mean = (out.reduce((s, r) => s + (r.score as number), 0) / 3);
  assert.deepEqual(summary, { judged: 3, valid: 3, invalid: 0, invalidByReason: {}, requests: 0, cacheHits: 0, meanScore: Math.round(mean * 10000) / 10000 });
});

test('judge: invalid input lines are reported as file:line: field', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  const inFile = path.join(dir, 'gen.jsonl');
  const outFile = path.join(dir, 'judged.jsonl');
  const cases: Array<[string, RegExp]> = [
    [`${JSON.stringify(rows[0])}\n{"id":"x","prompt":"p"}\n`, /gen\.jsonl:2: field "response"/],
    [`${JSON.stringify(rows[0])}\n\n{not json\n`, /gen\.jsonl:3: not a JSON object/],
    [`{"prompt":"p","response":"r"}\n`, /gen\.jsonl:1: field "id"/],
    [`{"id":"a","prompt":"p","response":"r","endedWithEot":"yes"}\n`, /gen\.jsonl:1: field "endedWithEot"/],
    [`{"id":"a","prompt":"p","response":"r"}\n{"id":"a","prompt":"p","response":"r"}\n`, /gen\.jsonl:2: field "id": "a" repeats line 1/],
  ];
  for (const [text, expected] of cases) {
    await fs.writeFile(inFile, text);
    const c = capture();
    assert.equal(await judgeCommand(['--in', inFile, '--out', outFile], c.out), 2);
    assert.match(c.errors.join('\n'), expected);
  }
  await assert.rejects(fs.access(outFile), 'no output on invalid input');
  // A run's eval/generations.jsonl has no id: it is epoch:exampleId:sample.
  await writeJsonl(inFile, [{ epoch: 3, exampleId: 'dev-7', sample: 0, prompt: 'p', response: 'an answer', reference: 'an answer', endedWithEot: true }]);
  const c = capture();
  assert.equal(await judgeCommand(['--in', inFile, '--out', outFile], c.out), 0);
  assert.equal((await readJsonl(outFile))[0]!.id, '3:dev-7:0');
});

test('judge: usage errors exit 2; --help exits 0', async () => {
  let c = capture();
  assert.equal(await judgeCommand(['--help'], c.out), 0);
  assert.match(c.logs[0]!, /--judge rubric\|llm/);
  c = capture();
  assert.equal(await judgeCommand(['--judge', 'rubric', '--in', 'a'], c.out), 2);
  assert.match(c.errors[0]!, /--in and --out are required/);
  c = capture();
  assert.equal(await judgeCommand(['--judge', 'rubric', '--model', 'm', '--in', 'a', '--out', 'b'], c.out), 2);
  assert.match(c.errors[0]!, /--model applies only to --judge llm/);
  c = capture();
  assert.equal(await judgeCommand(['--judge', 'llm', '--model', 'm', '--in', 'a', '--out', 'b'], c.out), 2);
  assert.match(c.errors[0]!, /baseUrl/);
  c = capture();
  assert.equal(await judgeCommand(['--bogus'], c.out), 2);
});

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

test('judge --judge llm against a local server: summary excludes invalid, key stays out of the output, rerun is cached', async () => {
  const secret = 'sk-cli-test-93be01aa7';
  let requests = 0;
  const seenAuth: Array<string | undefined> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests++;
      seenAuth.push(req.headers.authorization);
      const content: string = JSON.parse(body).messages[0].content;
      // e1 -> 6, e2 -> 3, e3 (empty response) -> an unreadable reply.
      const text = content.includes('[Submission]: Steps:') ? 'Well organised.\n6' : content.includes('[Submission]: Boil') ? 'Repetitive.\nChoice: 3' : 'Nothing to grade here.';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { content: text } }] }));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;

  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  const inFile = path.join(dir, 'gen.jsonl');
  const outFile = path.join(dir, 'out', 'judged.jsonl');
  await writeJsonl(inFile, rows);
  process.env.LIMA_CLI_TEST_KEY = secret;
  try {
    const args = ['--judge', 'llm', '--base-url', baseUrl, '--model', 'local', '--api-key-env', 'LIMA_CLI_TEST_KEY', '--concurrency', '2', '--in', inFile, '--out', outFile];
    let c = capture();
    assert.equal(await judgeCommand(args, c.out), 0, c.errors.join('\n'));
    assert.deepEqual(JSON.parse(c.logs[0]!), { judged: 3, valid: 2, invalid: 1, invalidByReason: { 'no-choice': 1 }, requests: 3, cacheHits: 0, meanScore: 4.5 });
    assert.ok(seenAuth.every((a) => a === `Bearer ${secret}`));
    const text = await fs.readFile(outFile, 'utf8');
    assert.ok(!text.includes(secret));
    const out = text.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(out.map((r) => [r.id, r.score, r.valid, r.invalidReason]), [['e1', 6, true, undefined], ['e2', 3, true, undefined], ['e3', null, false, 'no-choice']]);
    // The default cache lives beside --out; a rerun makes no requests.
    await fs.access(path.join(dir, 'out', 'judge-cache'));
    c = capture();
    assert.equal(await judgeCommand(args, c.out), 0, c.errors.join('\n'));
    assert.deepEqual(JSON.parse(c.logs[0]!), { judged: 3, valid: 2, invalid: 1, invalidByReason: { 'no-choice': 1 }, requests: 0, cacheHits: 3, meanScore: 4.5 });
    assert.equal(requests, 3);
  } finally {
    delete process.env.LIMA_CLI_TEST_KEY;
  }
});
