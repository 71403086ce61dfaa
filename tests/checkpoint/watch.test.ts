// --watch's notion of a checkpoint that may be read (src/checkpoint/watch.ts): complete (what the
// readers need is there, its JSON parses, every shard of a sharded set, each weights file as long
// as its header says: tests/checkpoint/completeness.test.ts; trainer_state.json in a Trainer's
// checkpoint-<step> folder) and stable (the same names, sizes and mtimes on two polls).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { encodeSafetensors } from '../../src/checkpoint/safetensors.ts';
import { folderState, StabilityTracker, trainerMaxSteps } from '../../src/checkpoint/watch.ts';
import { encodeGguf, T } from '../helpers/gguf-writer.ts';
import { tempDir } from '../eval/helpers.ts';

const root = await tempDir('watch-state');
/** A small whole safetensors file (one F32 tensor of n values). */
const safetensors = (n: number) => encodeSafetensors(new Map([['w', { shape: [n], data: new Float32Array(n).fill(1) }]]));
after(() => fs.rm(root, { recursive: true, force: true }));

test('folderState: an HF folder is complete only with config.json, its weights (every shard, whole) and trainer_state.json when named checkpoint-<step> or asked', async () => {
  const dir = path.join(root, 'final');
  assert.deepEqual(await folderState(dir), { complete: false, waitingFor: 'the folder', signature: 'missing' });
  await fs.mkdir(dir);
  assert.equal((await folderState(dir)).waitingFor, 'config.json');
  await fs.writeFile(path.join(dir, 'config.json'), '{"model_type": "gp'); // being written
  assert.equal((await folderState(dir)).waitingFor, 'config.json');
  await fs.writeFile(path.join(dir, 'config.json'), '{"model_type": "gpt2"}');
  assert.match((await folderState(dir)).waitingFor!, /^model\.safetensors/);
  const weightMap = { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' };
  await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  assert.equal((await folderState(dir)).waitingFor, '2 of 2 shards (model-00001-of-00002.safetensors, ...)');
  await fs.writeFile(path.join(dir, 'model-00001-of-00002.safetensors'), safetensors(4));
  assert.equal((await folderState(dir)).waitingFor, '1 of 2 shards (model-00002-of-00002.safetensors)');
  const shard2 = safetensors(100);
  await fs.writeFile(path.join(dir, 'model-00002-of-00002.safetensors'), shard2.subarray(0, shard2.length - 8));
  assert.equal((await folderState(dir)).waitingFor, `model-00002-of-00002.safetensors (${shard2.length - 8} of ${shard2.length} bytes)`);
  await fs.writeFile(path.join(dir, 'model-00002-of-00002.safetensors'), shard2);
  assert.equal((await folderState(dir)).complete, true, 'not named checkpoint-<step>: trainer_state.json only when asked');
  assert.equal((await folderState(dir, { requireTrainerState: true })).waitingFor, 'trainer_state.json');
  await fs.writeFile(path.join(dir, 'trainer_state.json'), JSON.stringify({ global_step: 20, max_steps: 60 }));
  assert.equal((await folderState(dir, { requireTrainerState: true })).complete, true);
  assert.equal(await trainerMaxSteps(dir), 60);
  assert.equal(await trainerMaxSteps(root), undefined);

  // The Trainer's own layout: checkpoint-<step> is complete only once trainer_state.json (written last) is.
  const trainer = path.join(root, 'checkpoint-20');
  await fs.mkdir(trainer);
  await fs.writeFile(path.join(trainer, 'config.json'), '{"model_type": "gpt2"}');
  await fs.writeFile(path.join(trainer, 'model.safetensors'), safetensors(8));
  assert.equal((await folderState(trainer)).waitingFor, 'trainer_state.json');
  await fs.writeFile(path.join(trainer, 'trainer_state.json'), '{"global_step": 2');
  assert.equal((await folderState(trainer)).waitingFor, 'trainer_state.json', 'half-written');
  await fs.writeFile(path.join(trainer, 'trainer_state.json'), '{"global_step": 20}');
  assert.equal((await folderState(trainer)).complete, true);
  // checkpoint-0, a base the user copies in, gets no trainer_state.json from the Trainer: complete without one, even when asked.
  const base = path.join(root, 'checkpoint-0');
  await fs.mkdir(base);
  await fs.writeFile(path.join(base, 'config.json'), '{"model_type": "gpt2"}');
  await fs.writeFile(path.join(base, 'model.safetensors'), safetensors(8));
  assert.equal((await folderState(base)).complete, true);
  assert.equal((await folderState(base, { requireTrainerState: true })).complete, true);

  const native = path.join(root, 'epoch-01');
  await fs.mkdir(native);
  await fs.writeFile(path.join(native, 'manifest.json'), '{}');
  assert.equal((await folderState(native)).complete, true, 'ours: manifest.json, written last');
  const gguf = path.join(root, 'model.gguf');
  await fs.writeFile(gguf, '');
  assert.equal((await folderState(gguf)).complete, false);
  const ggufBytes = encodeGguf({ metadata: [['general.architecture', T.STR, 'llama']], tensors: [{ name: 'w', ne: [8], type: 0, bytes: new Uint8Array(32) }] });
  await fs.writeFile(gguf, ggufBytes.subarray(0, 4));
  assert.equal((await folderState(gguf)).waitingFor, 'its header (4 bytes so far)', 'a non-empty file is not enough');
  await fs.writeFile(gguf, ggufBytes);
  assert.equal((await folderState(gguf)).complete, true);
});

test('StabilityTracker: ready once complete with the same files on two polls; a file still growing waits', async () => {
  const dir = path.join(root, 'checkpoint-30');
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'config.json'), '{}');
  await fs.writeFile(path.join(dir, 'trainer_state.json'), '{}');
  await fs.writeFile(path.join(dir, 'model.safetensors'), safetensors(4));
  const tracker = new StabilityTracker();
  assert.deepEqual(await tracker.observe(dir), { ready: false, waitingFor: 'its files to stop changing' }, 'first sight: not yet');
  await fs.writeFile(path.join(dir, 'model.safetensors'), safetensors(6)); // rewritten, whole again: still changing
  assert.equal((await tracker.observe(dir)).ready, false);
  assert.deepEqual(await tracker.observe(dir), { ready: true }, 'unchanged since the last poll');
  assert.equal(tracker.isReady(dir), true);
  await fs.appendFile(path.join(dir, 'optimizer.pt'), 'late');
  assert.deepEqual(await tracker.observe(dir), { ready: true }, 'once ready, it stays ready');
  const incomplete = path.join(root, 'checkpoint-40');
  await fs.mkdir(incomplete);
  await fs.writeFile(path.join(incomplete, 'config.json'), '{}');
  for (let i = 0; i < 3; i++) assert.equal((await tracker.observe(incomplete)).ready, false, 'stable but incomplete never counts');
});
