// The checkpoint module: the weights' content hash (same weights -> same hash, whenever and
// however written; one changed value -> another), verification on load, older manifests without
// the hash, the tokenizer's content hash, and the import graph (eval never reaches train/).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listCheckpoints, loadCheckpoint, tokenizerHash, weightsHash, writeCheckpoint, type CheckpointManifest } from '../../src/checkpoint/index.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { NamedWeights } from '../../src/model/weights.ts';
import { sha256File } from '../../src/util/hash.ts';
import { randomWeights } from '../eval/helpers.ts';

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-checkpoint-'));
after(() => fs.rm(root, { recursive: true, force: true }));

const model: ModelConfig = { vocab: 24, context: 8, dModel: 8, layers: 1, heads: 2 };
const tokenizer = { version: '1.0', model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] }, added_tokens: [] };
const meta = (epoch: number) => ({ epoch, step: epoch * 3, trainLoss: 2.5, dataHash: 'data', configHash: 'config', backend: 'test' });

async function write(runDir: string, weights: NamedWeights, epoch = 1, tok: unknown = tokenizer): Promise<string> {
  return writeCheckpoint(runDir, { model, weights, tokenizer: tok }, meta(epoch));
}

async function readManifest(dir: string): Promise<CheckpointManifest> {
  return JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8')) as CheckpointManifest;
}

/** The same tensors, inserted in reverse order (so weights.json and weights.bin lay them out differently). */
function reversed(weights: NamedWeights): NamedWeights {
  return new Map([...weights].reverse().map(([name, t]) => [name, { shape: [...t.shape], data: t.data.slice() }]));
}

test('the same weights written twice, at different times, in another layout and dir, have the same hash', async () => {
  const weights = randomWeights(model, 7);
  const a = await loadCheckpoint(await write(path.join(root, 'same-a'), weights, 1));
  await new Promise((r) => setTimeout(r, 5)); // a later write time in the manifest
  const b = await loadCheckpoint(await write(path.join(root, 'same-b'), reversed(weights), 4));
  assert.notEqual(a.manifest.time, b.manifest.time);
  assert.notEqual(a.manifest.files['weights.bin'], b.manifest.files['weights.bin'], 'the files differ (another tensor order)');
  assert.notEqual(await sha256File(path.join(a.dir, 'manifest.json')), await sha256File(path.join(b.dir, 'manifest.json')));
  assert.match(a.hash, /^[0-9a-f]{64}$/);
  assert.equal(a.hash, b.hash);
  assert.equal(a.manifest.weightsHash, a.hash, 'recorded in the manifest at write time');
  assert.equal(a.hash, weightsHash(model, weights));
});

test('one changed weight value, or another model config, changes the hash', async () => {
  const weights = randomWeights(model, 7);
  const changed = reversed(weights);
  const t = changed.get('h.0.mlp.b1')!;
  t.data[3] = Math.fround(t.data[3]! + 1e-6);
  assert.notEqual(t.data[3], weights.get('h.0.mlp.b1')!.data[3]);
  const a = await loadCheckpoint(await write(path.join(root, 'diff-a'), weights));
  const b = await loadCheckpoint(await write(path.join(root, 'diff-b'), changed));
  assert.notEqual(a.hash, b.hash);
  // Same values under another config (a longer context would need other shapes; heads does not).
  assert.notEqual(weightsHash({ ...model, heads: 4 }, weights), weightsHash(model, weights));
  // The tokenizer is not part of the weights' identity; it has its own hash.
  const otherTok = { ...tokenizer, added_tokens: [{ id: 1, content: '<|eot|>' }] };
  const c = await loadCheckpoint(await write(path.join(root, 'diff-c'), weights, 1, otherTok));
  assert.equal(c.hash, a.hash);
  assert.notEqual(c.tokenizerHash, a.tokenizerHash);
});

test('a tampered weights file is refused on load, naming the checkpoint and the file', async () => {
  const dir = await write(path.join(root, 'tamper'), randomWeights(model, 9));
  const file = path.join(dir, 'weights.bin');
  const bytes = await fs.readFile(file);
  bytes[20] = bytes[20]! ^ 0x01;
  await fs.writeFile(file, bytes);
  await assert.rejects(loadCheckpoint(dir), (err: Error) => err.message.includes(dir) && /corrupted: sha256 of weights\.bin/.test(err.message));
  // Tampered together with the manifest's file hash: only the weights' content hash catches it.
  const manifest = await readManifest(dir);
  manifest.files['weights.bin'] = await sha256File(file);
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  await assert.rejects(loadCheckpoint(dir), (err: Error) => err.message.includes(dir) && /content hash/.test(err.message));
});

test('a manifest without weightsHash (older checkpoints) still loads, with the hash computed', async () => {
  const weights = randomWeights(model, 11);
  const fresh = await loadCheckpoint(await write(path.join(root, 'new'), weights));
  const dir = await write(path.join(root, 'old'), weights, 2);
  const manifest = await readManifest(dir);
  delete manifest.weightsHash;
  await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  const old = await loadCheckpoint(dir);
  assert.equal(old.manifest.weightsHash, undefined);
  assert.equal(old.hash, fresh.hash);
  assert.equal(old.hash, weightsHash(model, weights));
  assert.deepEqual((await listCheckpoints(path.join(root, 'old'))).map((c) => c.epoch), [2]);
});

test('tokenizerHash is the tokenizer content: key order does not matter, content does', async () => {
  const ck = await loadCheckpoint(await write(path.join(root, 'tok'), randomWeights(model, 3)));
  assert.equal(ck.tokenizerHash, tokenizerHash(tokenizer));
  const reordered = { added_tokens: [], model: { merges: [], vocab: { b: 1, a: 0 }, type: 'BPE' }, version: '1.0' };
  assert.equal(tokenizerHash(reordered), tokenizerHash(tokenizer));
  assert.notEqual(tokenizerHash({ ...tokenizer, model: { ...tokenizer.model, vocab: { a: 1, b: 0 } } }), tokenizerHash(tokenizer));
});

// ---- import graph ----
const srcRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** Relative module specifiers of a file: static and dynamic imports, re-exports, new URL('...', import.meta.url). */
function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [/\bfrom\s+['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /\bimport\s+['"]([^'"]+)['"]/g, /new URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url/g];
  for (const re of patterns) for (const m of text.matchAll(re)) if (m[1]!.startsWith('.')) out.push(m[1]!);
  return out;
}

/** Every file under src/ reachable from the files of `dirs`, with the file that first imported it. */
async function reachable(dirs: string[]): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  const queue: string[] = [];
  for (const d of dirs) {
    for (const name of await fs.readdir(path.join(srcRoot, d))) {
      if (/\.(ts|mjs)$/.test(name)) {
        const f = path.join(srcRoot, d, name);
        seen.set(f, '(root)');
        queue.push(f);
      }
    }
  }
  while (queue.length > 0) {
    const file = queue.pop()!;
    for (const spec of specifiers(await fs.readFile(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), spec);
      if (seen.has(target)) continue;
      await fs.access(target); // an import that does not resolve would hide an edge
      seen.set(target, file);
      queue.push(target);
    }
  }
  return seen;
}

const stageOf = (file: string) => path.relative(srcRoot, file).split(path.sep)[0]!;

test('src/eval never reaches src/train; src/checkpoint reaches only model and util', async () => {
  const fromEval = await reachable(['eval']);
  assert.ok([...fromEval.keys()].some((f) => stageOf(f) === 'checkpoint'), 'eval reads checkpoints through src/checkpoint');
  const intoTrain = [...fromEval].filter(([f]) => stageOf(f) === 'train').map(([f, by]) => `${path.relative(srcRoot, by)} -> ${path.relative(srcRoot, f)}`);
  assert.deepEqual(intoTrain, []);
  const fromCheckpoint = await reachable(['checkpoint']);
  const stages = new Set([...fromCheckpoint.keys()].map(stageOf));
  assert.deepEqual([...stages].sort(), ['checkpoint', 'model', 'util']);
  // The scanner finds edges: train does import the checkpoint writer.
  assert.ok([...(await reachable(['train'])).keys()].some((f) => f.endsWith(path.join('checkpoint', 'native.ts'))));
});
