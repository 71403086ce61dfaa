// The study's pretraining text: file documents deduplicated against held-out and dev questions,
// WordNet and builtin texts appended, cached in the run's data directory until an input changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collectPretrainText } from '../../src/data/pretrain-cache.ts';
import type { ChatRecord } from '../../src/data/types.ts';

const question = (id: string, text: string): ChatRecord => ({ id, source: 'test', turns: [{ role: 'user', content: text }, { role: 'assistant', content: 'an answer' }] });

test('file documents repeating a held-out or dev question are dropped, counted and cached', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-pretext-'));
  const file = path.join(dir, 'notes.jsonl');
  await fs.writeFile(file, [
    JSON.stringify({ text: 'How do I brew cold coffee?\nSteep it for twelve hours.' }),
    JSON.stringify({ text: 'Rivers carry sand to the sea.' }),
  ].join('\n') + '\n');
  const options = { sources: [{ path: file }], wordnetTexts: 3, builtinTexts: ['builtin one'], exclude: [question('h1', 'how do I brew COLD coffee')], seed: 5, cacheDir: path.join(dir, 'cache') };
  const first = await collectPretrainText(options);
  assert.equal(first.provenance.dropped, 1);
  assert.equal(first.documents.length, 1 + 3 + 1);
  assert.equal(first.documents[0], 'Rivers carry sand to the sea.');
  assert.equal(first.documents.at(-1), 'builtin one');
  assert.equal((await fs.readFile(path.join(dir, 'cache', 'pretrain-dropped-titles.txt'), 'utf8')).trim(), 'how do i brew cold coffee');
  // Reused while nothing changed (the cache file is not rewritten) ...
  const cached = path.join(dir, 'cache', 'pretrain-documents.jsonl');
  const mtime = (await fs.stat(cached)).mtimeMs;
  assert.deepEqual(await collectPretrainText(options), first);
  assert.equal((await fs.stat(cached)).mtimeMs, mtime);
  // ... and recomputed when the excluded questions change.
  const other = await collectPretrainText({ ...options, exclude: [question('h2', 'Something else entirely?')] });
  assert.equal(other.provenance.dropped, 0);
  assert.equal(other.documents.length, 6);
  await fs.rm(dir, { recursive: true, force: true });
});

test('a missing pretraining file is an error naming it', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-pretext-'));
  await assert.rejects(
    collectPretrainText({ sources: [{ path: path.join(dir, 'nope.xml') }], wordnetTexts: 0, builtinTexts: [], exclude: [], seed: 1, cacheDir: dir }),
    /train\.base\.sources: .*nope\.xml: cannot read the pretraining file \(ENOENT\)/,
  );
  await fs.rm(dir, { recursive: true, force: true });
});
