import { test } from 'node:test';
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
});

test('initBackend wasm uses the SIMD build; cpu reports cpu', async () => {
  const w = await initBackend('wasm');
  assert.equal(w.name, 'wasm');
  assert.match(w.detail, /simd=true/);
  const c = await initBackend('cpu');
  assert.equal(c.name, 'cpu');
  await assert.rejects(() => initBackend('bogus' as never), /unknown backend/);
});
