// The training run end to end on a tiny model: it learns, writes one verified checkpoint per
// epoch, resumes to the same weights as an uninterrupted run, and refuses corrupted checkpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runTraining, type TrainRunOptions } from '../../src/train/run.ts';
import { defaultTrainConfig } from '../../src/train/config.ts';
import { listCheckpoints, loadCheckpoint } from '../../src/checkpoint/index.ts';
import { sha256File } from '../../src/util/hash.ts';

process.env.LIMA_QUIET = '1';
const model = { vocab: 40, context: 24, dModel: 16, layers: 2, heads: 2 };

/** Prompt tokens (no loss) then a response that is a fixed function of the prompt. */
function examples(n: number) {
  return Array.from({ length: n }, (_, i) => {
    const prompt = [3, 10 + (i % 7), 10 + ((i * 3) % 7)];
    const response = [20 + (i % 7), 30 + ((i * 3) % 7), 1];
    return { ids: [...prompt, 4, ...response], lossMask: [0, 0, 0, 0, 1, 1, 1] };
  });
}

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'lima-train-'));
}

function options(runDir: string, epochs: number, extra: Partial<TrainRunOptions> = {}, backend: 'wasm' | 'ort' = 'wasm'): TrainRunOptions {
  return {
    model,
    train: { ...defaultTrainConfig, epochs, batchSize: 8, lr: 3e-3, lrEnd: 3e-4, lrScale: 1, dropoutTop: 0.1, maxLength: 24, backend, threads: 2 },
    seed: 5,
    runDir,
    examples: examples(28),
    trimmedCount: 0,
    tokenizerJson: { test: true },
    dataHash: 'data-1',
    configHash: 'config-1',
    resume: true,
    quiet: true,
    ...extra,
  };
}

for (const backend of ['wasm', 'ort'] as const) {
  test(`${backend}: a tiny model learns the task: train loss falls far below chance, one checkpoint per epoch`, async () => {
    const dir = await tempDir();
    const result = await runTraining(options(dir, 30, {}, backend));
    assert.equal(result.checkpoints.length, 30);
    assert.equal(result.backend, backend);
    const first = result.checkpoints[0]!.trainLoss;
    const last = result.checkpoints[29]!.trainLoss;
    assert.ok(first > 3, `first epoch loss ${first} should be near chance (ln 40 = 3.7)`);
    assert.ok(last < 0.5 * first, `loss fell from ${first} to only ${last}`);
    const ck = await loadCheckpoint(result.checkpoints[29]!.dir);
    assert.equal(ck.manifest.epoch, 30);
    assert.equal(ck.manifest.backend, backend);
    assert.ok(ck.manifest.files['weights.bin'] && ck.manifest.files['optimizer.bin']);
    assert.deepEqual(ck.tokenizer, { test: true });
    await fs.rm(dir, { recursive: true, force: true });
  });

  test(`${backend}: resume after an interruption gives the same weights as an uninterrupted run`, async () => {
    const straight = await tempDir();
    await runTraining(options(straight, 4, {}, backend));
    const interrupted = await tempDir();
    await runTraining(options(interrupted, 4, {}, backend));
    // As if killed during epoch 3: epochs 3 and 4 never got written.
    await fs.rm(path.join(interrupted, 'epoch-03'), { recursive: true });
    await fs.rm(path.join(interrupted, 'epoch-04'), { recursive: true });
    await fs.mkdir(path.join(interrupted, '.epoch-03.123.tmp')); // a half-written checkpoint
    const resumed = await runTraining(options(interrupted, 4, {}, backend));
    assert.deepEqual(resumed.checkpoints.map((c) => c.epoch), [1, 2, 3, 4]);
    for (const epoch of ['epoch-03', 'epoch-04']) {
      assert.equal(await sha256File(path.join(interrupted, epoch, 'weights.bin')), await sha256File(path.join(straight, epoch, 'weights.bin')), `${epoch} weights differ`);
    }
    assert.deepEqual((await listCheckpoints(interrupted)).map((c) => c.epoch), [1, 2, 3, 4]);
    // A finished run resumes to nothing.
    const again = await runTraining(options(interrupted, 4, {}, backend));
    assert.equal(again.checkpoints.length, 4);
    await fs.rm(straight, { recursive: true, force: true });
    await fs.rm(interrupted, { recursive: true, force: true });
  });
}

test('a corrupted checkpoint is refused with a message naming the file', async () => {
  const dir = await tempDir();
  await runTraining(options(dir, 2));
  const file = path.join(dir, 'epoch-02', 'weights.bin');
  const bytes = await fs.readFile(file);
  bytes[10] = bytes[10]! ^ 0xff;
  await fs.writeFile(file, bytes);
  await assert.rejects(loadCheckpoint(path.join(dir, 'epoch-02')), /corrupted: sha256 of weights\.bin/);
  await assert.rejects(runTraining(options(dir, 3)), /epoch-02 is corrupted/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('a run made with another config is not silently continued', async () => {
  const dir = await tempDir();
  await runTraining(options(dir, 1));
  await assert.rejects(runTraining(options(dir, 2, { configHash: 'config-2' })), /another config or data/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('bad shapes and data are refused before any work', async () => {
  const dir = await tempDir();
  await assert.rejects(runTraining({ ...options(dir, 1), model: { ...model, heads: 3 } }), /heads \(3\) must divide/);
  await assert.rejects(runTraining({ ...options(dir, 1), examples: [{ ids: new Array(30).fill(5), lossMask: new Array(30).fill(1) }] }), /more than model.context 24/);
  assert.deepEqual(await fs.readdir(dir), []);
  await fs.rm(dir, { recursive: true, force: true });
});
