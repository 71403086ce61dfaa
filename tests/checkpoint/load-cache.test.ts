// The in-process summary cache (src/checkpoint/load-cache.ts) that spares --watch rounds from
// reading and hashing every evaluated checkpoint again: a summary is returned only while the
// checkpoint's files keep the size and mtime they had when it was loaded.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadAnyCheckpoint } from '../../src/checkpoint/index.ts';
import { cachedCheckpointSummary, checkpointSignature, rememberCheckpointSummary } from '../../src/checkpoint/load-cache.ts';
import { tinyLlamaGguf } from '../helpers/gguf-llama.ts';
import { tempDir } from '../eval/helpers.ts';

const root = await tempDir('load-cache');
after(() => fs.rm(root, { recursive: true, force: true }));

test('a loaded checkpoint is remembered (hash, model, tokenizer, GGUF metadata) until its file changes; a load during a rewrite is not', async () => {
  const file = path.join(root, 'step-1.gguf');
  await fs.writeFile(file, tinyLlamaGguf(1));
  assert.equal(await cachedCheckpointSummary(file), undefined, 'never loaded');
  const before = await checkpointSignature(file);
  const ck = await loadAnyCheckpoint(file);
  await rememberCheckpointSummary(file, before, ck);
  const summary = await cachedCheckpointSummary(file);
  assert.ok(summary);
  assert.equal(summary.hash, ck.hash);
  assert.deepEqual(summary.model, ck.model);
  assert.equal(summary.tokenizerHash, ck.tokenizerHash);
  assert.equal(summary.tokenizer, ck.tokenizer);
  assert.deepEqual(summary.manifest.extra, ck.manifest.extra);
  assert.equal(summary.manifest.extra?.format, 'gguf', 'what checkpointTokenizer reads for a GGUF file');

  await fs.writeFile(file, tinyLlamaGguf(2)); // rewritten by the trainer (same size, new mtime)
  assert.equal(await cachedCheckpointSummary(file), undefined, 'its files changed');

  const stale = await checkpointSignature(file);
  const again = await loadAnyCheckpoint(file);
  await fs.utimes(file, new Date(), new Date(Date.now() + 5000)); // touched during the load
  await rememberCheckpointSummary(file, stale, again);
  assert.equal(await cachedCheckpointSummary(file), undefined, 'changed while loading: not remembered');
  assert.equal(await cachedCheckpointSummary(path.join(root, 'absent.gguf')), undefined);
});
