// The pretrained base: content-addressed under bases/<hash>/, reused whatever the study around
// it, resumed mid-way to the same weights as an uninterrupted run, with a validation loss on
// documents it never trained on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pretrainBase, splitDocuments, pretrainLearningRate, packDocuments, type PretrainBaseOptions } from '../../src/train/base.ts';
import { defaultTrainConfig, validateTrainConfig, type PretrainBaseConfig } from '../../src/train/config.ts';
import { BpeTokenizer } from '../../src/data/tokenizer.ts';
import { loadCheckpoint } from '../../src/checkpoint/index.ts';
import { sha256File } from '../../src/util/hash.ts';

process.env.LIMA_QUIET = '1';

const words = ['river', 'stone', 'light', 'table', 'green', 'quiet', 'market', 'window', 'winter', 'paper', 'orange', 'garden'];
function documents(n: number, salt = 0): string[] {
  return Array.from({ length: n }, (_, i) => {
    const w = (k: number) => words[(i * 7 + k * 3 + salt) % words.length]!;
    return `The ${w(0)} is near the ${w(1)}. A ${w(2)} ${w(3)} and the ${w(4)} ${w(5)}.`;
  });
}

const schedule: PretrainBaseConfig = {
  kind: 'pretrain', epochs: 2, batchSize: 4, lr: 3e-3, warmupSteps: 2, maxLength: 24, sources: [], wordnetTexts: 0, validation: 0.1, checkpointMinutes: 5,
};

function options(basesDir: string, extra: Partial<PretrainBaseOptions> = {}, backend: 'wasm' | 'ort' = 'ort'): PretrainBaseOptions {
  return {
    basesDir,
    model: { context: 24, dModel: 16, layers: 1, heads: 2 },
    vocabSize: 300,
    base: schedule,
    train: { ...defaultTrainConfig, backend, threads: 1 },
    seed: 11,
    documents: documents(60),
    provenance: { test: true },
    quiet: true,
    ...extra,
  };
}

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'lima-base-'));
}

for (const backend of ['wasm', 'ort'] as const) {
  test(`${backend}: a base is pretrained once under bases/<hash>/ and reused`, async () => {
    const dir = await tempDir();
    const first = await pretrainBase(options(dir, {}, backend));
    assert.equal(path.dirname(path.dirname(first.dir)), dir);
    assert.equal(path.basename(first.dir), 'epoch-00');
    const record = JSON.parse(await fs.readFile(path.join(path.dirname(first.dir), 'base.json'), 'utf8'));
    assert.equal(record.hash, first.hash);
    assert.equal(record.documents.validation, 6);
    assert.equal(record.documents.train, 54);
    assert.ok(record.validationLoss > 0 && Number.isFinite(record.validationLoss), `validation loss ${record.validationLoss}`);
    // It learned something: the validation loss is below the uniform distribution's.
    assert.ok(record.validationLoss < Math.log(first.tokenizer.vocabSize), `validation loss ${record.validationLoss} vs ln V ${Math.log(first.tokenizer.vocabSize)}`);
    const weights = await sha256File(path.join(first.dir, 'weights.bin'));
    // Reused: same directory, same weights, no retraining (the checkpoint is not rewritten).
    const mtime = (await fs.stat(path.join(first.dir, 'manifest.json'))).mtimeMs;
    const again = await pretrainBase(options(dir, { provenance: { test: true } }, backend));
    assert.equal(again.dir, first.dir);
    assert.equal(await sha256File(path.join(again.dir, 'weights.bin')), weights);
    assert.equal((await fs.stat(path.join(again.dir, 'manifest.json'))).mtimeMs, mtime);
    // The tokenizer belongs to the base and is trained on its text alone.
    assert.deepEqual(again.tokenizer.toJSON(), BpeTokenizer.train(documents(60), 300).toJSON());
    await fs.rm(dir, { recursive: true, force: true });
  });
}

test('another text, schedule or seed is another base; checkpointMinutes is not', async () => {
  const dir = await tempDir();
  const a = await pretrainBase(options(dir, { base: { ...schedule, epochs: 1 } }));
  const b = await pretrainBase(options(dir, { base: { ...schedule, epochs: 1 }, documents: documents(60, 1) }));
  const c = await pretrainBase(options(dir, { base: { ...schedule, epochs: 1 }, seed: 12 }));
  const d = await pretrainBase(options(dir, { base: { ...schedule, epochs: 1, checkpointMinutes: 1 } }));
  assert.notEqual(a.hash, b.hash);
  assert.notEqual(a.hash, c.hash);
  assert.equal(a.hash, d.hash);
  assert.equal((await fs.readdir(dir)).length, 3);
  await fs.rm(dir, { recursive: true, force: true });
});

for (const backend of ['wasm', 'ort'] as const) {
  test(`${backend}: a pretraining stopped mid-way resumes to the same weights as an uninterrupted one`, async () => {
    const whole = await tempDir();
    const straight = await pretrainBase(options(whole, {}, backend));
    const straightWeights = await sha256File(path.join(straight.dir, 'weights.bin'));

    const broken = await tempDir();
    // A mid-way checkpoint after every step (checkpointMinutes ~ 0), then a crash after step 7.
    const stopAt = 7;
    const crashing = options(broken, { base: { ...schedule, checkpointMinutes: 1e-9 }, onStep: (step) => { if (step === stopAt) throw new Error('simulated crash'); } }, backend);
    await assert.rejects(pretrainBase(crashing), /simulated crash/);
    const hashDir = path.join(broken, (await fs.readdir(broken))[0]!);
    const partial = await loadCheckpoint(path.join(hashDir, 'partial', 'epoch-00'));
    assert.equal(partial.manifest.step, stopAt);
    await assert.rejects(fs.access(path.join(hashDir, 'epoch-00')));
    let resumedFrom = -1;
    const resumed = await pretrainBase({ ...crashing, onStep: (step) => { if (resumedFrom < 0) resumedFrom = step - 1; } });
    assert.equal(resumedFrom, stopAt);
    assert.equal(resumed.hash, straight.hash);
    assert.equal(await sha256File(path.join(resumed.dir, 'weights.bin')), straightWeights);
    await assert.rejects(fs.access(path.join(hashDir, 'partial')), 'the mid-way state is removed once the base is finished');
    const record = JSON.parse(await fs.readFile(path.join(hashDir, 'base.json'), 'utf8'));
    assert.equal(record.curve[record.curve.length - 1].step, record.steps);
    await fs.rm(whole, { recursive: true, force: true });
    await fs.rm(broken, { recursive: true, force: true });
  });
}

test('no pretraining text is a clear error', async () => {
  const dir = await tempDir();
  await assert.rejects(pretrainBase(options(dir, { documents: [] })), /no pretraining text/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('validation split, packing and the learning-rate schedule', () => {
  const docs = documents(50);
  const split = splitDocuments(docs, 0.1, 3);
  assert.equal(split.validation.length, 5);
  assert.equal(split.train.length + split.validation.length, 50);
  assert.deepEqual(splitDocuments(docs, 0.1, 3), split, 'seeded');
  assert.equal(splitDocuments(docs, 0, 3).validation.length, 0);
  const tok = BpeTokenizer.train(docs, 300);
  const seqs = packDocuments(tok, docs.slice(0, 10), 16);
  const all = docs.slice(0, 10).flatMap((d) => [...tok.encode(d), tok.special.eot]);
  assert.deepEqual(seqs.flat(), all.length % 16 === 1 ? all.slice(0, -1) : all);
  assert.ok(seqs.slice(0, -1).every((s) => s.length === 16));
  // Warm-up 2 steps to 1e-3, then linear to 1e-4 at the last of 12 steps.
  assert.deepEqual([0, 1, 2, 11].map((s) => Number(pretrainLearningRate(s, 12, 1e-3, 1e-4, 2).toPrecision(6))), [5e-4, 1e-3, 1e-3, 1e-4]);
});

test('config: pretraining keys are validated with their names', () => {
  const ok = validateTrainConfig({ base: { kind: 'pretrain', epochs: 1, batchSize: 4, lr: 1e-3, maxLength: 32, sources: ['a.xml', { path: 'b.jsonl', format: 'jsonl' }] } }, 't');
  assert.equal(ok.base.kind, 'pretrain');
  if (ok.base.kind === 'pretrain') {
    assert.deepEqual(ok.base.sources, [{ path: 'a.xml' }, { path: 'b.jsonl', format: 'jsonl' }]);
    assert.equal(ok.base.validation, 0.02);
    assert.equal(ok.base.warmupSteps, 0);
  }
  const bad = (extra: Record<string, unknown>) => () => validateTrainConfig({ base: { kind: 'pretrain', epochs: 1, batchSize: 4, lr: 1e-3, maxLength: 32, ...extra } }, 't');
  assert.throws(bad({ validation: 0.5 }), /t\.base\.validation/);
  assert.throws(bad({ sources: [{ path: 'x', format: 'csv' }] }), /t\.base\.sources\[0\]\.format/);
  assert.throws(bad({ lrEnd: 1 }), /t\.base\.lrEnd/);
  assert.throws(bad({ stepz: 3 }), /t\.base\.stepz: unknown key/);
});
