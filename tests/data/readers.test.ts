import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataError, detectFormat, readRecords } from '../../src/data/readers.ts';
import { htmlToText } from '../../src/data/html-to-text.ts';
import { splitLines } from '../../src/util/text.ts';

async function fixture(name: string, text: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  const file = path.join(dir, name);
  await fs.writeFile(file, text);
  return file;
}
const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

test('LIMA JSONL: alternating turns, source kept, multi-turn not a pair', async () => {
  const file = await fixture('lima.jsonl', [
    JSON.stringify({ conversations: ['Q1', 'A1'], source: 'stackexchange' }),
    JSON.stringify({ conversations: ['Q2', 'A2', 'Q3', 'A3'], source: 'wikihow' }),
  ].join('\n') + '\n');
  assert.equal(await detectFormat(file), 'lima');
  const r = await readRecords(file);
  assert.equal(r.records.length, 2);
  assert.equal(r.pairs, 1);
  assert.equal(r.records[0]!.source, 'stackexchange');
  assert.deepEqual(r.records[1]!.turns.map((t) => t.role), ['user', 'assistant', 'user', 'assistant']);
  assert.notEqual(r.records[0]!.id, r.records[1]!.id);
});

test('Alpaca JSON array: input appended after a blank line, history becomes earlier turns', async () => {
  const file = await fixture('a.json', JSON.stringify([
    { instruction: 'Translate', input: 'bonjour', output: 'hello' },
    { instruction: 'And this?', input: '', output: 'goodbye', history: [['Hi', 'Hello!'], ['How are you?', 'Fine.']] },
  ], null, 2));
  assert.equal(await detectFormat(file), 'alpaca');
  const r = await readRecords(file);
  assert.equal(r.records[0]!.turns[0]!.content, 'Translate\n\nbonjour');
  assert.deepEqual(r.records[1]!.turns.map((t) => t.content), ['Hi', 'Hello!', 'How are you?', 'Fine.', 'And this?', 'goodbye']);
  assert.equal(r.pairs, 1);
});

test('Alpaca JSONL and error naming file, line and field; skipInvalid counts reasons', async () => {
  const file = await fixture('x.jsonl', [
    JSON.stringify({ instruction: 'a', input: '', output: 'b' }),
    JSON.stringify({ instruction: 'c', input: '', output: '' }),
    '{not json',
    JSON.stringify({ instruction: 'e', output: 'f' }),
  ].join('\n'));
  assert.equal(await detectFormat(file), 'alpaca');
  await assert.rejects(readRecords(file), (err: unknown) => err instanceof DataError && err.message === `${file}:2: field "output": expected a non-empty string, got an empty string`);
  const r = await readRecords(file, { skipInvalid: true });
  assert.equal(r.records.length, 2);
  assert.equal(r.skipped, 2);
  assert.deepEqual(r.skippedByReason, { 'empty-output': 1, 'bad-json': 1 });
});

test('Alpaca JSON array error names the line of the bad element', async () => {
  const file = await fixture('arr.json', '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c",\n   "output": 3}\n]\n');
  await assert.rejects(readRecords(file), /arr\.json:3: record 1: field "output": expected a non-empty string, got number/);
});

test('chat JSONL: prompt/response, messages, question/answer; unknown role is an error', async () => {
  const file = await fixture('c.jsonl', [
    JSON.stringify({ prompt: 'p', response: 'r' }),
    JSON.stringify({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'u' }, { role: 'assistant', content: 'a' }] }),
    JSON.stringify({ question: 'q', answer: 'ans', questionId: '1' }),
    JSON.stringify({ messages: [{ role: 'bot', content: 'x' }] }),
  ].join('\n'));
  assert.equal(await detectFormat(file), 'chat');
  await assert.rejects(readRecords(file), /c\.jsonl:4: field "messages\[0\]\.role": expected one of system, user, assistant, got "bot"/);
  const r = await readRecords(file, { skipInvalid: true });
  assert.equal(r.records.length, 3);
  assert.equal(r.pairs, 3); // the system turn does not stop a record being one pair
  assert.deepEqual(r.records[2]!.turns, [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'ans' }]);
  assert.deepEqual(r.skippedByReason, { 'unknown-role': 1 });
});

function row(attrs: Record<string, string | number>): string {
  return `  <row ${Object.entries(attrs).map(([k, v]) => `${k}="${xmlEscape(String(v))}"`).join(' ')} />`;
}

test('Posts.xml: accepted answer, best-scored fallback, score-0 ignored, orphans, answers before their question', async () => {
  const rows = [
    // Answer 11 arrives before its question 10 (accepted, score 0 still wins as accepted).
    row({ Id: 11, PostTypeId: 2, ParentId: 10, Score: 0, Body: '<p>accepted &amp; early</p>' }),
    row({ Id: 12, PostTypeId: 2, ParentId: 10, Score: 9, Body: '<p>higher score but not accepted</p>' }),
    row({ Id: 10, PostTypeId: 1, AcceptedAnswerId: 11, Score: 3, Title: 'Question ten?', Body: '<p>Body <code>x</code></p>' }),
    // Question 20: no accepted answer; best score wins, ties go to the lower Id.
    row({ Id: 20, PostTypeId: 1, Score: 1, Title: 'Twenty', Body: '<p>b</p>' }),
    row({ Id: 23, PostTypeId: 2, ParentId: 20, Score: 4, Body: '<p>later tie</p>' }),
    row({ Id: 22, PostTypeId: 2, ParentId: 20, Score: 4, Body: '<p>best</p>' }),
    row({ Id: 21, PostTypeId: 2, ParentId: 20, Score: 1, Body: '<p>ok</p>' }),
    // Question 30: only a score-0 answer -> unanswered.
    row({ Id: 30, PostTypeId: 1, Score: 1, Title: 'Thirty', Body: '<p>c</p>' }),
    row({ Id: 31, PostTypeId: 2, ParentId: 30, Score: 0, Body: '<p>meh</p>' }),
    // Orphans: parent 99 is not in the file.
    row({ Id: 40, PostTypeId: 2, ParentId: 99, Score: 5, Body: '<p>orphan</p>' }),
    row({ Id: 41, PostTypeId: 2, ParentId: 99, Score: 1, Body: '<p>orphan 2</p>' }),
    row({ Id: 50, PostTypeId: 4, Body: 'tag wiki' }),
  ];
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  await fs.mkdir(path.join(dir, 'beer'));
  const file = path.join(dir, 'beer', 'Posts.xml');
  await fs.writeFile(file, `\uFEFF<?xml version="1.0" encoding="utf-8"?>\n<posts>\n${rows.join('\n')}\n</posts>\n`);
  assert.equal(await detectFormat(file), 'se-xml');
  const r = await readRecords(file);
  assert.deepEqual(r.records.map((x) => x.id), ['beer:10', 'beer:20']);
  assert.equal(r.records[0]!.source, 'beer');
  assert.equal(r.records[0]!.turns[0]!.content, 'Question ten?\n\nBody `x`');
  assert.equal(r.records[0]!.turns[1]!.content, 'accepted & early');
  assert.equal(r.records[1]!.turns[1]!.content, 'best');
  assert.deepEqual(r.skippedByReason, { unanswered: 1, 'orphan-answer': 2 });
  assert.equal(r.pairs, 2);
});

test('Posts.xml cut off before </posts> still yields what was read; malformed XML names the line', async () => {
  const cut = await fixture('Posts.xml', `<posts>\n${row({ Id: 1, PostTypeId: 1, Title: 'T', Body: 'b', AcceptedAnswerId: 2 })}\n${row({ Id: 2, PostTypeId: 2, ParentId: 1, Score: 0, Body: 'a' })}\n`);
  assert.equal((await readRecords(cut)).records.length, 1);
  const bad = await fixture('Posts.xml', `<posts>\n${row({ Id: 1, PostTypeId: 1, Title: 'T', Body: 'b' })}\n  <row Id="2" PostTypeId="2" ParentId=1 />\n</posts>`);
  await assert.rejects(readRecords(bad, { format: 'se-xml' }), /Posts\.xml:3: malformed XML/);
});

test('detectFormat rejects what it cannot recognise', async () => {
  const file = await fixture('odd.jsonl', JSON.stringify({ foo: 1 }) + '\n');
  await assert.rejects(detectFormat(file), /odd\.jsonl:1: cannot tell the format/);
});

test('html-to-text (turndown): paragraphs, nested lists, fenced code, inline code, entities, headings, quotes, no link URLs', () => {
  const html = '<h2>Title</h2><p>One &amp; two &lt;tag&gt; &quot;q&quot; &#39;s&#39; &#x41;&#66;&nbsp;x</p>\n<p>Line<br>break and <a href="u">a link</a> with <code>f(x)</code> and <em>stress</em>.</p>' +
    '<ul><li>apple</li><li>fruit<ol><li>first</li><li>second</li></ol></li></ul>' +
    '<pre class="lang-js prettyprint-override"><code>if (a &lt; b) {\n  return 1;   \n}\n</code></pre><blockquote><p>quoted</p></blockquote>' +
    '<ol start="3"><li><p>loose item</p></li><li><p>next</p><pre>bare pre\n  kept</pre></li></ol><p>1. not a list, # not a heading, *not emphasis*</p>';
  assert.equal(
    htmlToText(html),
    [
      '## Title',
      '',
      `One & two <tag> "q" 's' AB x`, // &nbsp; becomes a plain space
      '',
      'Line',
      'break and a link with `f(x)` and *stress*.',
      '',
      '* apple',
      '* fruit',
      '  1. first',
      '  2. second',
      '',
      '```',
      'if (a < b) {',
      '  return 1;   ', // code is kept as written, trailing spaces included
      '}',
      '```',
      '',
      '> quoted',
      '',
      '3. loose item',
      '',
      '4. next',
      '',
      '   ```',
      '   bare pre',
      '     kept',
      '   ```',
      '',
      '1. not a list, # not a heading, *not emphasis*', // text is not backslash-escaped
    ].join('\n'),
  );
});

test('html-to-text: carriage returns become line feeds everywhere, code blocks included', () => {
  const html = '<p>one\r\ntwo\rthree</p>\r\n<pre><code>a\r\nb\rc\r\n\r\nd\r</code></pre><ul>\r<li>x\ry</li></ul>';
  const text = htmlToText(html);
  assert.ok(!text.includes('\r'), JSON.stringify(text));
  assert.equal(text, 'one two three\n\n```\na\nb\nc\n\nd\n```\n\n* x y');
});

test('html-to-text never throws on messy HTML and keeps <script> text as text', () => {
  assert.equal(htmlToText('<p>a < b && c <script>alert("x")</script></p>'), 'a < b && c alert("x")');
  for (const messy of ['<p><b>unclosed', '</div></div>text', '<<>>', '<a href=x>y', '&#xZZZ; &bogus; &#99999999;', '<pre>never closed', '']) {
    assert.equal(typeof htmlToText(messy), 'string');
  }
  assert.equal(htmlToText('<p><img src="x.png" alt="A chart"></p>'), '[image: A chart]');
});

async function postsXml(rows: string[], site = 'site'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  await fs.mkdir(path.join(dir, site));
  const file = path.join(dir, site, 'Posts.xml');
  await fs.writeFile(file, `<?xml version="1.0" encoding="utf-8"?>\n<posts>\n${rows.join('\n')}\n</posts>\n`);
  return file;
}

test('Posts.xml: a 1 MB question Body and a 200 KB answer read whole (beyond sax\'s 64 KiB buffer)', async () => {
  // Paragraphs of distinct numbered sentences, so a dropped or repeated piece changes the text.
  const paragraphs = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `<p>${tag} sentence ${i} &amp; more.</p>`).join('\n');
  const questionHtml = paragraphs(40_000, 'Question');
  const answerHtml = `<pre><code>${'x = 1;\n'.repeat(5_000)}</code></pre>\n${paragraphs(7_000, 'Answer')}`;
  assert.ok(questionHtml.length > 1_000_000 && answerHtml.length > 200_000);
  const file = await postsXml([
    row({ Id: 1, PostTypeId: 1, AcceptedAnswerId: 2, Title: 'Long', Body: questionHtml }),
    row({ Id: 2, PostTypeId: 2, ParentId: 1, Score: 3, Body: answerHtml }),
    row({ Id: 3, PostTypeId: 1, AcceptedAnswerId: 4, Title: 'After the long ones', Body: '<p>q</p>' }),
    row({ Id: 4, PostTypeId: 2, ParentId: 3, Score: 1, Body: '<p>a</p>' }),
  ]);
  const r = await readRecords(file);
  assert.deepEqual(r.skippedByReason, {});
  assert.equal(r.records.length, 2);
  const [prompt, response] = r.records[0]!.turns.map((t) => t.content);
  const sentences = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag} sentence ${i} & more.`).join('\n\n');
  assert.equal(prompt, `Long\n\n${sentences(40_000, 'Question')}`);
  assert.equal(response, '```\n' + 'x = 1;\n'.repeat(5_000) + '```\n\n' + sentences(7_000, 'Answer'));
  assert.deepEqual(r.records[1]!.turns.map((t) => t.content), ['After the long ones\n\nq', 'a']);
});

test('Posts.xml --skip-invalid counts malformed rows once each, not parser errors; valid rows are kept', async () => {
  const file = await postsXml([
    row({ Id: 1, PostTypeId: 1, AcceptedAnswerId: 2, Title: 'One', Body: '<p>q1</p>' }),
    row({ Id: 2, PostTypeId: 2, ParentId: 1, Score: 1, Body: '<p>a1</p>' }),
    // Three errors in one row (unquoted value, bad attribute name, attribute without value): one row skipped.
    '  <row Id="5" PostTypeId="1" Title=T &bogus Body="x" />',
    // One error in another row: the answer to question 10 is skipped, so 10 is unanswered.
    row({ Id: 10, PostTypeId: 1, Title: 'Ten', Body: '<p>q10</p>' }),
    '  <row Id="11" PostTypeId="2" ParentId=10 Score="5" Body="a" />',
    row({ Id: 20, PostTypeId: 1, AcceptedAnswerId: 21, Title: 'Twenty', Body: '<p>q20</p>' }),
    // A mismatched closing tag after a valid row spoils no row: noted, not skipped.
    `${row({ Id: 21, PostTypeId: 2, ParentId: 20, Score: 0, Body: '<p>a20</p>' }).replace(' />', '>')}</rowx></row>`,
  ]);
  await assert.rejects(readRecords(file), /Posts\.xml:5: malformed XML \(Unquoted attribute value\)/);
  const r = await readRecords(file, { skipInvalid: true });
  assert.deepEqual(r.records.map((x) => x.id), ['site:1', 'site:20']);
  assert.deepEqual(r.skippedByReason, { 'xml-error': 2, unanswered: 1 });
  assert.equal(r.skipped, 3);
  assert.deepEqual(r.notes, { 'xml-error-outside-rows': 1 });
});

test('Posts.xml: an accepted answer without text falls back to the best remaining answer, counted', async () => {
  const file = await postsXml([
    // Missing Body on the accepted answer: the best other answer (score >= 1) is used.
    row({ Id: 1, PostTypeId: 1, AcceptedAnswerId: 2, Title: 'Missing', Body: '<p>q</p>' }),
    row({ Id: 2, PostTypeId: 2, ParentId: 1, Score: 10 }),
    row({ Id: 3, PostTypeId: 2, ParentId: 1, Score: 2, Body: '<p>second best</p>' }),
    row({ Id: 4, PostTypeId: 2, ParentId: 1, Score: 4, Body: '<p>best remaining</p>' }),
    // Empty Body, and the best-scored other answer has no text either ("<p> </p>"): the next one.
    row({ Id: 5, PostTypeId: 2, ParentId: 10, Score: 1, Body: '<p>early answer</p>' }),
    row({ Id: 10, PostTypeId: 1, AcceptedAnswerId: 11, Title: 'Empty', Body: '<p>q</p>' }),
    row({ Id: 11, PostTypeId: 2, ParentId: 10, Score: 7, Body: '' }),
    row({ Id: 12, PostTypeId: 2, ParentId: 10, Score: 9, Body: '<p> </p>' }),
    // Accepted answer with no text and no other answer with score >= 1: skipped under its own reason.
    row({ Id: 20, PostTypeId: 1, AcceptedAnswerId: 21, Title: 'Nothing left', Body: '<p>q</p>' }),
    row({ Id: 21, PostTypeId: 2, ParentId: 20, Score: 3, Body: '  ' }),
    row({ Id: 22, PostTypeId: 2, ParentId: 20, Score: 0, Body: '<p>score zero</p>' }),
  ]);
  const r = await readRecords(file);
  assert.deepEqual(r.records.map((x) => [x.id, x.turns[1]!.content]), [['site:1', 'best remaining'], ['site:10', 'early answer']]);
  assert.deepEqual(r.notes, { 'empty-accepted-answer': 2 });
  assert.deepEqual(r.skippedByReason, { 'empty-accepted-answer': 1 });
});

test('Posts.xml: carriage returns in titles and bodies (code included) become line feeds', async () => {
  const file = await postsXml([
    row({ Id: 1, PostTypeId: 1, AcceptedAnswerId: 2, Title: 'Windows\r\ntitle', Body: '<p>para one\r\n\r\n</p><pre><code>line 1\r\nline 2\rline 3\r\n</code></pre>' }),
    row({ Id: 2, PostTypeId: 2, ParentId: 1, Score: 1, Body: '<ol>\r\n<li>step\r\none</li>\r\n</ol>\r\n<pre><code>a\rb</code></pre>' }),
    // As the dumps write them: line ends inside attributes as character references.
  ].map((line) => line.replace(/\r/g, '&#xD;').replace(/\n/g, '&#xA;')));
  const r = await readRecords(file);
  const [prompt, response] = r.records[0]!.turns.map((t) => t.content);
  assert.equal(prompt, 'Windows\ntitle\n\npara one\n\n```\nline 1\nline 2\nline 3\n```');
  assert.equal(response, '1. step one\n\n```\na\nb\n```');
});

test('splitLines: only line feeds end a line (U+2028/U+2029/U+0085/lone CR inside JSON strings do not); CRLF loses its CR', async () => {
  const first = '{"prompt":"p","response":"before\u2028after"}'; // U+2028 raw inside a JSON string
  const text = `${first}\r\n{"a":"x\u2029y\u0085z\rw"}\n\n{"last":"no final line feed"}`;
  const collect = async (chunks: string[]) => {
    const out: Array<[number, string]> = [];
    for await (const { line, number } of splitLines(chunks)) out.push([number, line]);
    return out;
  };
  const expected: Array<[number, string]> = [[1, first], [2, '{"a":"x\u2029y\u0085z\rw"}'], [3, ''], [4, '{"last":"no final line feed"}']];
  assert.deepEqual(await collect([text]), expected);
  // Any chunking gives the same lines, including a CR and its LF in different chunks.
  for (const size of [1, 2, 3, 7]) {
    const chunks = Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size));
    assert.deepEqual(await collect(chunks), expected, `chunks of ${size}`);
  }
  assert.deepEqual(await collect(['a\n']), [[1, 'a']]);
  assert.deepEqual(await collect(['a\r']), [[1, 'a']]);
  assert.deepEqual(await collect([]), []);
});

test('JSONL with raw U+2028/U+2029 inside strings reads one record per line, content intact', async () => {
  const lines = [
    JSON.stringify({ prompt: 'line\u2028separator', response: 'para\u2029separator' }),
    JSON.stringify({ prompt: 'second', response: 'ok' }),
  ];
  const file = await fixture('sep.jsonl', '\uFEFF' + lines.join('\r\n') + '\r\n');
  const r = await readRecords(file);
  assert.equal(r.records.length, 2);
  assert.deepEqual(r.records[0]!.turns.map((t) => t.content), ['line\u2028separator', 'para\u2029separator']);
  assert.equal(r.records[1]!.id.endsWith(':2'), true, 'ids keep the file line number');
});

test('a JSON array of LIMA or chat records is detected by its fields and read like JSONL', async () => {
  const lima = await fixture('lima.json', '\uFEFF' + JSON.stringify([{ conversations: ['Q1', 'A1'], source: 'wikihow' }, { conversations: ['Q2', 'A2', 'Q3', 'A3'] }], null, 2));
  assert.equal(await detectFormat(lima), 'lima');
  const l = await readRecords(lima);
  assert.equal(l.format, 'lima');
  assert.deepEqual(l.records.map((x) => x.turns.length), [2, 4]);
  assert.equal(l.records[0]!.source, 'wikihow');
  const chat = await fixture('chat.json', JSON.stringify([
    { messages: [{ role: 'user', content: 'u' }, { role: 'assistant', content: 'a' }] },
    { prompt: 'p', response: 'r' },
    { question: 'q', answer: 'ans' },
  ]));
  assert.equal(await detectFormat(chat), 'chat');
  assert.deepEqual((await readRecords(chat)).records.map((x) => x.turns[1]!.content), ['a', 'r', 'ans']);
  // Only the first element decides: fields of later ones (or nested keys) do not.
  const qa = await fixture('qa.json', JSON.stringify([{ question: 'q', answer: 'a', meta: { instruction: 'x' } }, { instruction: 'i', output: 'o' }]));
  assert.equal(await detectFormat(qa), 'chat');
  // A first element longer than the bytes peeked is still recognised.
  const long = await fixture('long.json', JSON.stringify([{ conversations: ['Q'.repeat(100_000), 'A'] }]));
  assert.equal(await detectFormat(long), 'lima');
  // Errors name the line of the bad element, as for Alpaca arrays.
  const bad = await fixture('bad.json', '[\n  {"conversations": ["q", "a"]},\n  {"conversations": ["q"]}\n]\n');
  await assert.rejects(readRecords(bad), /bad\.json:3: record 1: field "conversations": expected alternating user\/assistant strings/);
  const odd = await fixture('odd.json', '[{"foo": 1}]');
  await assert.rejects(detectFormat(odd), /odd\.json:1: cannot tell the format of the array's first element/);
});

test('data stats prints skipped rows and fallback notes', async () => {
  const { dataCommand } = await import('../../src/cli/data-command.ts');
  const file = await postsXml([
    row({ Id: 1, PostTypeId: 1, AcceptedAnswerId: 2, Title: 'One', Body: '<p>q</p>' }),
    row({ Id: 2, PostTypeId: 2, ParentId: 1, Score: 5, Body: '' }),
    row({ Id: 3, PostTypeId: 2, ParentId: 1, Score: 1, Body: '<p>fallback</p>' }),
    '  <row Id="4" PostTypeId="1" Title=bad />',
  ]);
  const printed: string[] = [];
  const log = mock.method(console, 'log', (text: string) => void printed.push(text));
  try {
    assert.equal(await dataCommand(['stats', file, '--skip-invalid']), 0);
  } finally {
    log.mock.restore();
  }
  const stats = JSON.parse(printed.join('\n'));
  assert.equal(stats.records, 1);
  assert.equal(stats.skipped, 1);
  assert.deepEqual(stats.skippedByReason, { 'xml-error': 1 });
  assert.deepEqual(stats.notes, { 'empty-accepted-answer': 1 });
});
