import { test } from 'node:test';
import os from 'node:os';
import assert from 'node:assert/strict';
import { validateTrainConfig, defaultTrainConfig } from '../../src/train/config.ts';
import { initBackend } from '../../src/train/backend.ts';

test('defaults validate and keep the LIMA recipe', () => {
  const c = validateTrainConfig({}, 'train');
  assert.deepEqual(c, defaultTrainConfig);
  assert.equal(c.epochs, 15);
  assert.equal(c.lr, 1e-5);
});

test('config errors name the key', () => {
  assert.throws(() => validateTrainConfig({ epochs: 0 }, 'cfg.train'), /cfg\.train\.epochs/);
  assert.throws(() => validateTrainConfig({ batchSize: 2.5 }, 't'), /t\.batchSize/);
  assert.throws(() => validateTrainConfig({ beta2: 1 }, 't'), /t\.beta2/);
  assert.throws(() => validateTrainConfig({ backend: 'gpu' }, 't'), /t\.backend/);
  assert.throws(() => validateTrainConfig({ lrr: 1 }, 't'), /t\.lrr: unknown key/);
  assert.throws(() => validateTrainConfig({ base: { kind: 'pretrain', epochs: 1, batchSize: 4, lr: 0 , maxLength: 32 } }, 't'), /t\.base\.lr/);
  assert.throws(() => validateTrainConfig({ base: { kind: 'checkpoint' } }, 't'), /t\.base\.path/);
  assert.throws(() => validateTrainConfig('x', 't'), /t: expected an object/);
  assert.throws(() => validateTrainConfig({ threads: 0 }, 't'), /t\.threads: expected a positive integer or "auto"/);
  assert.throws(() => validateTrainConfig({ threads: 'all' }, 't'), /t\.threads/);
  assert.equal(validateTrainConfig({ backend: 'ort', threads: 2 }, 't').threads, 2);
});

test('initBackend wasm uses the SIMD build; cpu reports cpu', async () => {
  const w = await initBackend('wasm');
  assert.equal(w.name, 'wasm');
  assert.match(w.detail, /simd=true/);
  const c = await initBackend('cpu');
  assert.equal(c.name, 'cpu');
  await assert.rejects(() => initBackend('bogus' as never), /unknown backend/);
});

test('initBackend ort: onnxruntime on the configured threads, every core by default; auto is ort without a GPU', async () => {
  const two = await initBackend('ort', { threads: 2 });
  assert.equal(two.name, 'ort');
  assert.equal(two.threads, 2);
  assert.match(two.detail, /onnxruntime-node \d+\.\d+.*2 threads/);
  const all = await initBackend('ort', { threads: 'auto' });
  assert.equal(all.threads, os.availableParallelism());
  // No tfjs-node-gpu with a GPU device here (DEVELOPERS.md): auto falls to the onnxruntime engine.
  assert.equal((await initBackend('auto')).name, 'ort');
  await assert.rejects(() => initBackend('ort', { threads: 0 }), /train\.threads/);
});
