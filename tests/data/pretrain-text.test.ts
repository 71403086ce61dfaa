import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataError } from '../../src/data/errors.ts';
import { detectPretrainFormat, readPretrainText, validatePretrainSources } from '../../src/data/pretrain-text.ts';
import { ConfigError } from '../../src/util/validate.ts';

async function fixture(name: string, text: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-pretrain-'));
  const file = path.join(dir, name);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, text);
  return file;
}
const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
type Attrs = Record<string, string | number>;
const row = (a: Attrs) => `  <row ${Object.entries(a).map(([k, v]) => `${k}="${k === 'Body' || k === 'Title' ? xmlEscape(String(v)) : v}"`).join(' ')} />`;
const postsXml = (rows: Attrs[]) => `\ufeff<?xml version="1.0" encoding="utf-8"?>\n<posts>\n${rows.map(row).join('\n')}\n</posts>\n`;
const none = { questions: [] as string[] };

test('se-xml: a question and its answers are one document, accepted first, then score, then id', async () => {
  const file = await fixture('site/Posts.xml', postsXml([
    // An answer before its question is still grouped under it.
    { Id: 2, PostTypeId: 2, ParentId: 1, Score: 5, Body: '<p>Second by score.</p>' },
    { Id: 1, PostTypeId: 1, AcceptedAnswerId: 3, Score: 9, Title: 'Why is the sky blue?', Body: '<p>I wonder.</p>' },
    { Id: 3, PostTypeId: 2, ParentId: 1, Score: 1, Body: '<p>Accepted one.</p>' },
    { Id: 5, PostTypeId: 2, ParentId: 1, Score: 5, Body: '<p>Same score, higher id.</p>' },
    { Id: 6, PostTypeId: 1, Score: 0, Title: 'Unanswered question', Body: '<p>Nobody replied.</p>' },
  ]));
  const r = await readPretrainText([{ path: file }], none);
  assert.deepEqual(r.documents, [
    { text: '# Why is the sky blue?\n\nI wonder.\n\nAccepted one.\n\nSecond by score.\n\nSame score, higher id.', source: 'site:1', title: 'Why is the sky blue?' },
    { text: '# Unanswered question\n\nNobody replied.', source: 'site:6', title: 'Unanswered question' },
  ]);
  assert.deepEqual(r.sources, [{ path: file, format: 'se-xml', documents: 2, dropped: 0, skipped: {} }]);
  assert.equal(r.dropped, 0);
  assert.deepEqual(r.droppedTitles, []);
});

test('se-xml: orphan answers stand alone in file order; tag wikis, other types and bodyless rows are skipped and counted', async () => {
  const file = await fixture('dump/Posts.xml', postsXml([
    { Id: 1, PostTypeId: 1, Title: 'First', Body: '<p>q1</p>' },
    { Id: 7, PostTypeId: 2, ParentId: 99, Score: 3, Body: '<p>Orphan answer text.</p>' },
    { Id: 8, PostTypeId: 4, Body: '<p>Tag excerpt</p>' },
    { Id: 9, PostTypeId: 5, Body: '<p>Tag wiki</p>' },
    { Id: 10, PostTypeId: 6, Body: '<p>Nomination</p>' },
    { Id: 11, PostTypeId: 2, ParentId: 1, Score: 0 },
    { Id: 12, PostTypeId: 1, Title: 'Later', Body: '<p>q12</p>' },
  ]));
  const r = await readPretrainText([{ path: file }], none);
  assert.deepEqual(r.documents.map((d) => d.text), ['# First\n\nq1', 'Orphan answer text.', '# Later\n\nq12']);
  assert.equal(r.documents[1]!.source, 'dump:a7');
  assert.equal(r.documents[1]!.title, undefined);
  assert.deepEqual(r.sources[0]!.skipped, { 'tag-wiki': 2, 'post-type-6': 1, 'no-body': 1 });
});

test('se-xml: HTML bodies become Markdown (fenced code, decoded entities)', async () => {
  const file = await fixture('h/Posts.xml', postsXml([
    { Id: 1, PostTypeId: 1, AcceptedAnswerId: 2, Title: 'Tom &amp; Jerry <3', Body: '<p>Fish &amp; chips &quot;quoted&quot;</p>' },
    { Id: 2, PostTypeId: 2, ParentId: 1, Body: '<p>Try:</p>\n<pre><code>if (a &lt; b) {\n  return 1;\n}\n</code></pre>' },
  ]));
  const r = await readPretrainText([{ path: file }], none);
  const doc = r.documents[0]!;
  // The title is entity-decoded once, as the dump stores it.
  assert.equal(doc.title, 'Tom &amp; Jerry <3');
  assert.equal(doc.text, '# Tom &amp; Jerry <3\n\nFish & chips "quoted"\n\nTry:\n\n```\nif (a < b) {\n  return 1;\n}\n```');
});

test('dedupe: documents matching a held-out/dev question (first line or whole prompt) are dropped, case and punctuation aside', async () => {
  const xml = await fixture('d/Posts.xml', postsXml([
    { Id: 1, PostTypeId: 1, Title: 'How do I sort a dict by value?', Body: '<p>Body</p>' },
    { Id: 2, PostTypeId: 2, ParentId: 1, Body: '<p>Use sorted().</p>' },
    { Id: 3, PostTypeId: 1, Title: 'Kept question', Body: '<p>Body</p>' },
    { Id: 4, PostTypeId: 1, Title: '!!!', Body: '<p>empty key never matches</p>' },
  ]));
  const jsonl = await fixture('t.jsonl', [
    JSON.stringify({ text: 'WHAT IS   a monad\nA monoid in the category of endofunctors.' }),
    JSON.stringify({ text: 'Unrelated text' }),
  ].join('\n'));
  const questions = [
    'how do I — sort a Dict by value\n\nI have a dictionary and want it sorted.',
    'What is a monad?', // a one-line prompt: its whole text is the key
    '???', // normalises to "": never matches the "!!!" title
  ];
  const r = await readPretrainText([{ path: xml }, { path: jsonl }], { questions });
  assert.deepEqual(r.documents.map((d) => d.text.split('\n')[0]), ['# Kept question', '# !!!', 'Unrelated text']);
  assert.equal(r.dropped, 2);
  assert.deepEqual(r.droppedTitles, ['how do i sort a dict by value', 'what is a monad']);
  assert.deepEqual(r.sources.map((s) => [s.format, s.documents, s.dropped]), [['se-xml', 2, 1], ['jsonl', 1, 1]]);
});

test('dedupe: answers of a question without a Body stand alone but are compared on its title', async () => {
  const file = await fixture('nb/Posts.xml', postsXml([
    { Id: 1, PostTypeId: 1, Title: 'Held-out title', Body: '' },
    { Id: 2, PostTypeId: 2, ParentId: 1, Body: '<p>Answer to a held-out question.</p>' },
    { Id: 3, PostTypeId: 1, Title: 'Other title' },
    { Id: 4, PostTypeId: 2, ParentId: 3, Body: '<p>Kept answer.</p>' },
  ]));
  const r = await readPretrainText([{ path: file }], { questions: ['held out title'] });
  assert.deepEqual(r.documents, [{ text: 'Kept answer.', source: 'nb:a4' }]);
  assert.deepEqual(r.sources[0]!.skipped, { 'no-body': 2 });
  assert.equal(r.dropped, 1);
  assert.deepEqual(r.droppedTitles, ['held out title']);
});

test('dedupe: the whole prompt is a key too (a multi-line prompt equal to a one-line document)', async () => {
  const file = await fixture('w.txt', 'line one line two\nrest of document');
  const r = await readPretrainText([{ path: file }], { questions: ['Line one,\nline two.'] });
  assert.equal(r.documents.length, 0);
  assert.deepEqual(r.droppedTitles, ['line one line two']);
});

test('text: one document per file, form feeds separate documents, CRLF and BOM removed', async () => {
  const file = await fixture('notes.txt', '\ufeffFirst doc line\r\nmore\r\n\f\r\nSecond\r\n\f  \n\f');
  const r = await readPretrainText([{ path: file }], none);
  assert.deepEqual(r.documents, [
    { text: 'First doc line\nmore', source: `${file}#1` },
    { text: 'Second', source: `${file}#2` },
  ]);
  assert.deepEqual(r.sources[0]!.skipped, { 'empty-part': 2 });
  const single = await fixture('one.txt', 'Just\r\n\r\none document\r\n');
  const s = await readPretrainText([{ path: single }], none);
  assert.deepEqual(s.documents, [{ text: 'Just\n\none document', source: single }]);
});

test('jsonl: documents per line; bad JSON, non-objects and missing or non-string text name file:line and the field', async () => {
  const good = await fixture('g.jsonl', `${JSON.stringify({ text: 'a\r\nb', meta: 1 })}\n\n${JSON.stringify({ text: '  ' })}\n${JSON.stringify({ text: 'c\u2028d' })}\n`);
  const r = await readPretrainText([{ path: good }], none);
  assert.deepEqual(r.documents, [{ text: 'a\nb', source: `${good}:1` }, { text: 'c\u2028d', source: `${good}:4` }]);
  assert.deepEqual(r.sources[0]!.skipped, { 'empty-text': 1 });
  const cases: Array<[string, RegExp]> = [
    ['{"text": "ok"}\n{"text": "broken"\n', /:2: not valid JSON/],
    ['{"text": "ok"}\n{"text": "ok"}\n{"body": "x"}\n', /:3: field "text": expected a string, got nothing \(missing\)/],
    ['{"text": 5}\n', /:1: field "text": expected a string, got number/],
    ['["text"]\n', /:1: expected a JSON object with a "text" string, got an array/],
  ];
  for (const [content, pattern] of cases) {
    const file = await fixture('bad.jsonl', content);
    await assert.rejects(readPretrainText([{ path: file }], none), (err: Error) => {
      assert.ok(err instanceof DataError, String(err));
      assert.ok(err.message.startsWith(`${file}:`), err.message);
      assert.match(err.message, pattern);
      return true;
    });
  }
});

test('format detection: Posts.xml name or <posts> root, .jsonl, otherwise text (other XML and .json refused); an explicit format wins', async () => {
  const named = await fixture('x/posts.XML', '<posts></posts>');
  const rooted = await fixture('dump.xml', '\ufeff<?xml version="1.0"?>\n<!-- a comment -->\n<posts>\n</posts>\n');
  const jsonl = await fixture('data.jsonl', '{"text": "x"}\n');
  const otherXml = await fixture('page.xml', '<html><body>hi</body></html>');
  const txt = await fixture('book.txt', 'Once upon a time');
  assert.equal(await detectPretrainFormat(named), 'se-xml');
  assert.equal(await detectPretrainFormat(rooted), 'se-xml');
  assert.equal(await detectPretrainFormat(jsonl), 'jsonl');
  await assert.rejects(detectPretrainFormat(otherXml), /page\.xml: an XML file that is not a Stack Exchange Posts\.xml .*"format": "text"/);
  const users = await fixture('Users.txt', '<?xml version="1.0"?>\n<users><row Id="1" /></users>\n');
  await assert.rejects(detectPretrainFormat(users), /Users\.txt: an XML file that is not a Stack Exchange Posts\.xml/);
  const json = await fixture('docs.json', '[{"text": "x"}]');
  await assert.rejects(detectPretrainFormat(json), /docs\.json: a \.json file; pretraining reads JSONL/);
  assert.equal((await readPretrainText([{ path: otherXml, format: 'text' }], none)).documents.length, 1, 'an explicit format reads it');
  assert.equal(await detectPretrainFormat(txt), 'text');
  const r = await readPretrainText([{ path: jsonl, format: 'text' }, { path: rooted }], none);
  assert.deepEqual(r.sources.map((s) => s.format), ['text', 'se-xml']);
  assert.deepEqual(r.documents, [{ text: '{"text": "x"}', source: jsonl }]);
});

test('errors: a missing file names its path; a malformed or unreadable XML row names file:line', async () => {
  const missing = path.join(os.tmpdir(), 'lima-pretrain-does-not-exist', 'Posts.xml');
  await assert.rejects(readPretrainText([{ path: missing }], none), (err: Error) => err instanceof DataError && err.message === `${missing}: cannot open (ENOENT)`);
  const broken = await fixture('b/Posts.xml', '<posts>\n  <row Id="1" PostTypeId="1" Title="t" Body="x" />\n  <row Id="2" PostTypeId="1" Title="t Body="y" />\n</posts>\n');
  await assert.rejects(readPretrainText([{ path: broken }], none), (err: Error) => err instanceof DataError && err.message.startsWith(`${broken}:3: malformed XML`));
  const noParent = await fixture('c/Posts.xml', '<posts>\n  <row Id="1" PostTypeId="1" Title="t" Body="x" />\n\n  <row Id="2" PostTypeId="2" Body="y" />\n</posts>\n');
  await assert.rejects(readPretrainText([{ path: noParent }], none), (err: Error) => err instanceof DataError && err.message === `${noParent}:4: field "ParentId": missing`);
  const badId = await fixture('e/Posts.xml', '<posts>\n  <row Id="x1" PostTypeId="1" Title="t" Body="x" />\n</posts>\n');
  await assert.rejects(readPretrainText([{ path: badId }], none), (err: Error) => err instanceof DataError && err.message === `${badId}:2: field "Id": expected an integer, got "x1"`);
});

test('validatePretrainSources: strings or { path, format? }; errors name the key', () => {
  assert.deepEqual(validatePretrainSources(['a/Posts.xml', { path: 'b.txt', format: 'text' }, { path: 'c.jsonl' }], 'cfg.json: data.pretrain'), [
    { path: 'a/Posts.xml' },
    { path: 'b.txt', format: 'text' },
    { path: 'c.jsonl' },
  ]);
  assert.deepEqual(validatePretrainSources([], 'w'), []);
  const cases: Array<[unknown, string]> = [
    [{ path: 'x' }, 'cfg: expected an array'],
    [[{ path: 'x', format: 'lima' }], 'cfg[0].format: expected one of se-xml, text, jsonl, got "lima"'],
    [['ok', { file: 'x' }], 'cfg[1].file: unknown key'],
    [[{}], 'cfg[0].path: expected a non-empty string'],
    [[''], 'cfg[0]: expected a non-empty string'],
  ];
  for (const [raw, message] of cases) {
    assert.throws(() => validatePretrainSources(raw, 'cfg'), (err: Error) => err instanceof ConfigError && err.message.startsWith(message));
  }
});

// ---- real data beside the project (../shared/data/pretrain) -----------------------------

const PRETRAIN = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'pretrain');

/** Questions with a Body plus answers whose question is not in the file, counted with regexes (independently of sax). */
function expectedDocuments(xml: string): number {
  const questions = new Set<string>();
  const parents: string[] = [];
  for (const m of xml.matchAll(/<row((?:\s+[A-Za-z]+="[^"]*")*)\s*\/>/g)) {
    const attrs = Object.fromEntries([...m[1]!.matchAll(/([A-Za-z]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]));
    if (!attrs.Body) continue;
    if (attrs.PostTypeId === '1') questions.add(attrs.Id!);
    else if (attrs.PostTypeId === '2') parents.push(attrs.ParentId!);
  }
  return questions.size + parents.filter((p) => !questions.has(p)).length;
}

test('real pretraining dumps: every Posts.xml read; documents = questions + orphan answers; >= 10,000 documents, > 20 MB', async (t) => {
  if (!existsSync(PRETRAIN)) return t.skip(`real pretraining data not found at ${PRETRAIN}`);
  const sites = (await fs.readdir(PRETRAIN)).filter((d) => existsSync(path.join(PRETRAIN, d, 'Posts.xml'))).sort();
  const files = sites.map((s) => path.join(PRETRAIN, s, 'Posts.xml'));
  const started = Date.now();
  const r = await readPretrainText(files.map((p) => ({ path: p })), none);
  const seconds = (Date.now() - started) / 1000;
  let expected = 0;
  for (const file of files) expected += expectedDocuments(await fs.readFile(file, 'utf8'));
  const chars = r.documents.reduce((n, d) => n + d.text.length, 0);
  const skipped: Record<string, number> = {};
  for (const s of r.sources) for (const [k, v] of Object.entries(s.skipped)) skipped[k] = (skipped[k] ?? 0) + v;
  const orphans = r.documents.filter((d) => d.title === undefined).length;
  t.diagnostic(`pretrain: ${files.length} files, ${r.documents.length} documents (${r.documents.length - orphans} questions + ${orphans} orphan answers), ${chars} characters, read in ${seconds.toFixed(1)} s; skipped ${JSON.stringify(skipped)}`);
  for (const s of r.sources) t.diagnostic(`  ${path.basename(path.dirname(s.path))}: ${s.documents} documents, skipped ${JSON.stringify(s.skipped)}`);
  assert.equal(r.sources.length, files.length);
  assert.equal(r.documents.length, expected);
  assert.ok(r.documents.length >= 10_000, `${r.documents.length} documents`);
  assert.ok(chars > 20_000_000, `${chars} characters`);
  assert.equal(r.dropped, 0);
  for (const d of r.documents) assert.ok(!d.text.includes('\r') && d.text.trim() !== '', `bad document ${d.source}`);
});
