import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normalizeQuestion, prepareData, readJsonl, validateDataConfig, type DataConfig } from '../../src/data/prepare.ts';
import type { ChatRecord } from '../../src/data/types.ts';
import { ConfigError } from '../../src/util/validate.ts';

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
}

async function writeChat(file: string, pairs: Array<[string, string]>): Promise<string> {
  await fs.writeFile(file, pairs.map(([prompt, response]) => JSON.stringify({ prompt, response })).join('\n') + '\n');
  return file;
}

function config(train: string, heldout: string[], dev: string[], counts: DataConfig['counts']): DataConfig {
  return validateDataConfig({ train: [{ path: train }], heldout: heldout.map((p) => ({ path: p })), dev: dev.map((p) => ({ path: p })), counts }, 'test.json: data');
}

async function fixtureSet(dir: string) {
  const train = await writeChat(path.join(dir, 'train.jsonl'), Array.from({ length: 30 }, (_, i): [string, string] => [`How do I do task number ${i}?`, `Answer ${i}`]));
  // Held-out: 40 distinct questions, plus copies of train prompts modulo case/punctuation and a title match.
  const qa: Array<[string, string]> = Array.from({ length: 40 }, (_, i) => [`Why is sky colour ${i} so?`, `Because ${i}`]);
  qa.push(['HOW do i do TASK number 3???', 'dup of train']);
  qa.push(['How do I do task number 4\n\nSome extra body text here.', 'dup by title']);
  qa.push(['why is sky colour 7 so', 'dup of another held-out question']);
  const se = await writeChat(path.join(dir, 'qa.jsonl'), qa);
  return { train, se };
}

test('validateDataConfig fills defaults and names the bad key', () => {
  const c = validateDataConfig({ builtin: 'wordnet', train: [], heldout: [], dev: [] }, 'e.json: data');
  assert.deepEqual(c.counts, { train: 1000, heldout: 2000, dev: 50 });
  assert.equal(c.pretrainTexts, 4000);
  assert.equal(c.singleTurnOnly, true);
  assert.equal(c.skipInvalid, false);
  assert.throws(() => validateDataConfig({ builtin: 'wordnet', train: [], heldout: [], dev: [], count: {} }, 'e.json: data'), (e: unknown) => e instanceof ConfigError && /e\.json: data\.count: unknown key/.test(e.message));
  assert.throws(() => validateDataConfig({ builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: -1 } }, 'e.json: data'), /data\.counts\.train: must be >= 1/);
  assert.throws(() => validateDataConfig({ train: [{ path: 'a', format: 'csv' }], heldout: [{ path: 'b' }], dev: [{ path: 'c' }] }, 'e.json: data'), /data\.train\[0\]\.format: expected one of/);
  // With the builtin dataset, a set given sources replaces that set only.
  assert.deepEqual(validateDataConfig({ builtin: 'wordnet', train: [], heldout: [{ path: 'h.jsonl' }], dev: [] }, 'e.json: data').heldout, [{ path: 'h.jsonl' }]);
  assert.throws(() => validateDataConfig({ train: [{ path: 'a' }], heldout: [], dev: [{ path: 'c' }] }, 'e.json: data'), /data\.heldout: expected at least one source/);
  assert.throws(() => validateDataConfig({ builtin: 'wordnet', train: [], heldout: [], dev: [], skipInvalid: 'yes' }, 'e.json: data'), /data\.skipInvalid: expected true or false/);
});

test('normalizeQuestion: case, punctuation, NFKC, whitespace', () => {
  assert.equal(normalizeQuestion('  Ｈow   do I — sort a Dict?! '), 'how do i sort a dict');
});

test('prepare: counts, dedupe against train and among held-out, dev/held-out disjoint (pooled lists)', async () => {
  const dir = await tmp();
  const { train, se } = await fixtureSet(dir);
  const out = path.join(dir, 'out');
  const prepared = await prepareData(config(train, [se], [se], { train: 20, heldout: 30, dev: 9 }), 1, out);
  assert.deepEqual(prepared.counts, { train: 20, heldout: 30, dev: 9 });
  const trainRecs = await readJsonl<ChatRecord>(prepared.train);
  const held = await readJsonl<ChatRecord>(prepared.heldout);
  const dev = await readJsonl<ChatRecord>(prepared.dev);
  assert.equal(trainRecs.length, 20);
  const responses = [...held, ...dev].map((r) => r.turns[1]!.content);
  // Train items 3 and 4 may or may not be among the 20 chosen; when chosen, their copies must be gone.
  const chosen = new Set(trainRecs.map((r) => r.turns[0]!.content));
  if (chosen.has('How do I do task number 3?')) assert.ok(!responses.includes('dup of train'));
  if (chosen.has('How do I do task number 4?')) assert.ok(!responses.includes('dup by title'));
  const keys = [...held, ...dev].map((r) => normalizeQuestion(r.turns[0]!.content));
  assert.equal(new Set(keys).size, keys.length, 'no duplicate questions across held-out and dev');
  const heldIds = new Set(held.map((r) => r.id));
  assert.ok(dev.every((r) => !heldIds.has(r.id)));
  const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
  assert.equal(manifest.hash, prepared.hash);
  assert.deepEqual(Object.keys(manifest.files).sort(), ['dev.jsonl', 'heldout.jsonl', 'train.jsonl']);
});

test('prepare: a held-out question equal to a train prompt modulo case/punctuation is removed', async () => {
  const dir = await tmp();
  const train = await writeChat(path.join(dir, 'train.jsonl'), [['What is a citra hop?', 'x'], ['Other', 'y']]);
  const held = await writeChat(path.join(dir, 'held.jsonl'), [['what is a CITRA hop', 'dup'], ['What is a lager?', 'ok'], ['What is an ale?', 'ok2']]);
  const dev = await writeChat(path.join(dir, 'dev.jsonl'), [['What is a citra hop?\n\nI was offered one.', 'dup by title'], ['Where is hops grown?', 'fine']]);
  const prepared = await prepareData(config(train, [held], [dev], { train: 2, heldout: 2, dev: 1 }), 3, path.join(dir, 'out'));
  assert.deepEqual((await readJsonl<ChatRecord>(prepared.heldout)).map((r) => r.turns[1]!.content).sort(), ['ok', 'ok2']);
  assert.deepEqual((await readJsonl<ChatRecord>(prepared.dev)).map((r) => r.turns[1]!.content), ['fine']);
  // Separate lists: held-out excludes what dev took.
  const dev2 = await writeChat(path.join(dir, 'dev2.jsonl'), [['WHAT is a lager', 'same as held-out']]);
  await assert.rejects(
    prepareData(config(train, [held], [dev2], { train: 2, heldout: 2, dev: 1 }), 3, path.join(dir, 'out2')),
    /held-out set: asked for 2 examples but the sources give only 1 after deduplication against train and dev \(.*held\.jsonl\)/,
  );
});

test('prepare: same seed -> identical files; other seed -> different', async () => {
  const dir = await tmp();
  const { train, se } = await fixtureSet(dir);
  const c = config(train, [se], [se], { train: 20, heldout: 25, dev: 5 });
  const a = await prepareData(c, 1, path.join(dir, 'a'));
  const b = await prepareData(c, 1, path.join(dir, 'b'));
  const other = await prepareData(c, 2, path.join(dir, 'c'));
  for (const name of ['train', 'heldout', 'dev'] as const) {
    assert.equal(await fs.readFile(a[name], 'utf8'), await fs.readFile(b[name], 'utf8'));
  }
  assert.equal(a.hash, b.hash);
  assert.notEqual(a.hash, other.hash);
});

test('prepare: too-small sets name the count available and the sources', async () => {
  const dir = await tmp();
  const { train, se } = await fixtureSet(dir);
  await assert.rejects(prepareData(config(train, [se], [se], { train: 20, heldout: 200, dev: 5 }), 1, path.join(dir, 'o')), (err: Error) => {
    assert.match(err.message, /^held-out set: asked for 200 examples but the sources give only \d+ after deduplication and setting aside 5 dev examples \(.*qa\.jsonl\)$/);
    return true;
  });
  await assert.rejects(prepareData(config(train, [se], [se], { train: 31, heldout: 2, dev: 2 }), 1, path.join(dir, 'o')), /training set: asked for 31 examples but the sources give only 30 single-turn records/);
});

test('prepare resumes: same inputs reuse the manifest without rewriting; a changed source rebuilds', async () => {
  const dir = await tmp();
  const { train, se } = await fixtureSet(dir);
  const out = path.join(dir, 'out');
  const c = config(train, [se], [se], { train: 20, heldout: 25, dev: 5 });
  // Whole-second times so they can be restored exactly below.
  const fixedTime = 1_700_000_000;
  await fs.utimes(train, fixedTime, fixedTime);
  const first = await prepareData(c, 1, out);
  const mtimes = await Promise.all(['train.jsonl', 'heldout.jsonl', 'dev.jsonl', 'manifest.json'].map(async (f) => (await fs.stat(path.join(out, f))).mtimeMs));
  // Prove the sources are not re-read: overwrite train with invalid JSON of the same size and
  // restore its mtime, so only a re-read would notice (and fail).
  const original = await fs.readFile(train);
  await fs.writeFile(train, Buffer.alloc(original.length, 0x7b));
  await fs.utimes(train, fixedTime, fixedTime);
  const second = await prepareData(c, 1, out);
  assert.deepEqual(second, first);
  const mtimes2 = await Promise.all(['train.jsonl', 'heldout.jsonl', 'dev.jsonl', 'manifest.json'].map(async (f) => (await fs.stat(path.join(out, f))).mtimeMs));
  assert.deepEqual(mtimes2, mtimes);
  await fs.writeFile(train, original);
  await fs.utimes(train, fixedTime, fixedTime);
  // A corrupted output file is detected by its hash and rebuilt.
  await fs.writeFile(path.join(out, 'dev.jsonl'), 'garbage\n');
  const third = await prepareData(c, 1, out);
  assert.equal(third.hash, first.hash);
  assert.notEqual(await fs.readFile(path.join(out, 'dev.jsonl'), 'utf8'), 'garbage\n');
  // A changed source (size/mtime) changes the inputs key and rebuilds.
  await fs.appendFile(train, JSON.stringify({ prompt: 'New train question?', response: 'r' }) + '\n');
  const manifestBefore = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
  await prepareData(c, 1, out);
  const manifestAfter = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
  assert.notEqual(manifestAfter.inputsKey, manifestBefore.inputsKey);
});

test('prepare: builtin wordnet writes pretrain.jsonl', async () => {
  const dir = await tmp();
  const c = validateDataConfig({ builtin: 'wordnet', counts: { train: 20, heldout: 30, dev: 5 }, pretrainTexts: 40 }, 'w');
  const prepared = await prepareData(c, 5, dir);
  assert.deepEqual(prepared.counts, { train: 20, heldout: 30, dev: 5, pretrain: 40 });
  const texts = await readJsonl<{ text: string }>(prepared.pretrain!);
  assert.equal(texts.length, 40);
  assert.ok(texts.every((t) => typeof t.text === 'string' && t.text.length > 10));
});

test('prepare: builtin with only the held-out set replaced keeps the builtin train, dev and pretraining text', async () => {
  const dir = await tmp();
  const counts = { train: 20, heldout: 6, dev: 5 };
  const held = await writeChat(path.join(dir, 'held.jsonl'), Array.from({ length: 9 }, (_, i): [string, string] => [`Own held-out question ${i}?`, `Own answer ${i}`]));
  const pure = await prepareData(validateDataConfig({ builtin: 'wordnet', counts, pretrainTexts: 30 }, 'w'), 5, path.join(dir, 'pure'));
  const mixed = await prepareData(validateDataConfig({ builtin: 'wordnet', heldout: [{ path: held }], counts, pretrainTexts: 30 }, 'w'), 5, path.join(dir, 'mixed'));
  assert.deepEqual(mixed.counts, { train: 20, heldout: 6, dev: 5, pretrain: 30 });
  // Train, dev and the pretraining text are exactly the builtin's for the same seed ...
  for (const name of ['train', 'dev', 'pretrain'] as const) {
    assert.equal(await fs.readFile(mixed[name]!, 'utf8'), await fs.readFile(pure[name]!, 'utf8'), name);
  }
  // ... and the held-out set comes from the file only.
  const heldout = await readJsonl<ChatRecord>(mixed.heldout);
  assert.equal(heldout.length, 6);
  assert.ok(heldout.every((r) => r.source === 'held.jsonl' && /^Own held-out question \d\?$/.test(r.turns[0]!.content)), JSON.stringify(heldout.map((r) => r.source)));
  assert.ok((await readJsonl<ChatRecord>(pure.heldout)).every((r) => r.source !== 'held.jsonl'));
  // Too few held-out records names the file, not the builtin.
  await assert.rejects(
    prepareData(validateDataConfig({ builtin: 'wordnet', heldout: [{ path: held }], counts: { ...counts, heldout: 10 }, pretrainTexts: 0 }, 'w'), 5, path.join(dir, 'small')),
    /held-out set: asked for 10 examples but the sources give only 9 after deduplication against train and dev \(.*held\.jsonl\)/,
  );
});

test('prepare: builtin with the dev set replaced deduplicates it against the builtin train set', async () => {
  const dir = await tmp();
  const counts = { train: 20, heldout: 6, dev: 3 };
  const pure = await prepareData(validateDataConfig({ builtin: 'wordnet', counts, pretrainTexts: 0 }, 'w'), 8, path.join(dir, 'pure'));
  const trainPrompt = (await readJsonl<ChatRecord>(pure.train))[0]!.turns[0]!.content;
  const dev = await writeChat(path.join(dir, 'dev.jsonl'), [[trainPrompt.toUpperCase(), 'copy of a train prompt'], ['Own dev one?', 'a'], ['Own dev two?', 'b'], ['Own dev three?', 'c']]);
  const mixed = await prepareData(validateDataConfig({ builtin: 'wordnet', dev: [{ path: dev }], counts, pretrainTexts: 0 }, 'w'), 8, path.join(dir, 'mixed'));
  assert.deepEqual((await readJsonl<ChatRecord>(mixed.dev)).map((r) => r.turns[1]!.content).sort(), ['a', 'b', 'c']);
  assert.equal(await fs.readFile(mixed.heldout, 'utf8'), await fs.readFile(pure.heldout, 'utf8'));
  const manifest = JSON.parse(await fs.readFile(path.join(dir, 'mixed', 'manifest.json'), 'utf8'));
  assert.equal(manifest.removedAsTrainDuplicates, 1);
});

test('readJsonl names file:line on bad JSON', async () => {
  const dir = await tmp();
  const file = path.join(dir, 'bad.jsonl');
  await fs.writeFile(file, '{"a":1}\n{oops\n');
  await assert.rejects(readJsonl(file), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: not valid JSON`));
});
