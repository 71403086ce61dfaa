// Results are keyed by the checkpoint's content hash, so two epochs with identical weights share
// it. Perplexity is a function of the weights and may be shared; generations are seeded by the
// epoch, so each epoch keeps its own samples, and each has its own ONNX file.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runEvaluation } from '../../src/eval/index.ts';
import { defaultEvalConfig, type EvalConfig } from '../../src/eval/config.ts';
import { writeCheckpoint } from '../../src/checkpoint/index.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { makeRecords, makeTokenizer, randomWeights, tempDir } from './helpers.ts';

const root = await tempDir('same-weights');
after(() => fs.rm(root, { recursive: true, force: true }));

test('two epochs with identical weights: one hash, shared perplexity, each epoch its own generations', async () => {
  const tok = makeTokenizer();
  const model: ModelConfig = { vocab: tok.vocabSize, context: 32, dModel: 16, layers: 1, heads: 2 };
  const weights = randomWeights(model, 5, 0.3);
  const runDir = path.join(root, 'run');
  const checkpoints = [];
  for (const epoch of [1, 2]) {
    const meta = { epoch, step: epoch, trainLoss: 1, dataHash: 'test', configHash: 'test', backend: 'test' };
    checkpoints.push({ epoch, dir: await writeCheckpoint(runDir, { model, weights, tokenizer: tok.toJSON() }, meta) });
  }
  const config: EvalConfig = { ...defaultEvalConfig, maxLength: 32, batchTokens: 128, generation: { ...defaultEvalConfig.generation, samples: 2, maxNewTokens: 8 } };
  const opts = { checkpoints, heldout: makeRecords('held', 6, 1), dev: makeRecords('dev', 3, 2), outDir: path.join(root, 'eval'), config, seed: 77, quiet: true, pool: { workers: 1, threads: 1 } };
  const first = await runEvaluation(opts);

  const [a, b] = first.perCheckpoint;
  assert.equal(a!.checkpointHash, b!.checkpointHash);
  assert.equal(a!.perplexity, b!.perplexity);
  assert.deepEqual(first.perplexity.map((r) => r.epoch), [...Array(6).fill(1), ...Array(6).fill(2)]);

  assert.equal(first.generations.length, 2 * 3 * 2);
  assert.deepEqual(first.generations.map((g) => g.epoch), [...Array(6).fill(1), ...Array(6).fill(2)]);
  const byEpoch = (epoch: number) => first.generations.filter((g) => g.epoch === epoch).map((g) => g.response);
  assert.notDeepEqual(byEpoch(1), byEpoch(2), 'epochs draw different samples (seeded by epoch)');
  assert.equal(first.computed.generations, 12, 'no epoch reused the other epoch\'s samples');
  const stored = (await fs.readFile(path.join(opts.outDir, 'generations.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(stored.length, 12);

  for (const epoch of [1, 2]) {
    const meta = JSON.parse(await fs.readFile(path.join(opts.outDir, 'onnx', `${epoch}.json`), 'utf8')) as { checkpointHash: string; checkpointDir: string };
    assert.equal(meta.checkpointHash, a!.checkpointHash);
    assert.equal(meta.checkpointDir, checkpoints[epoch - 1]!.dir);
  }

  const again = await runEvaluation(opts);
  assert.deepEqual(again.computed, { perplexity: 0, generations: 0 });
  assert.deepEqual(again.generations, first.generations);
  assert.deepEqual(again.perplexity, first.perplexity);
});

test('an HF folder of the same weights is evaluated through loadAnyCheckpoint: same hash and results as native; seedKey sets the generation seeds', async () => {
  const { writeHfGpt2 } = await import('../../src/checkpoint/index.ts');
  const tok = makeTokenizer();
  const model: ModelConfig = { vocab: tok.vocabSize, context: 32, dModel: 16, layers: 1, heads: 2 };
  const weights = randomWeights(model, 9, 0.3);
  const meta = { epoch: 3, step: 30, trainLoss: 1, dataHash: 'test', configHash: 'test', backend: 'test' };
  const nativeDir = await writeCheckpoint(path.join(root, 'run-hf'), { model, weights, tokenizer: tok.toJSON() }, meta);
  const hfDir = path.join(root, 'hf-3');
  await writeHfGpt2(hfDir, model, weights, { tokenizer: tok.toJSON() });
  const config: EvalConfig = { ...defaultEvalConfig, maxLength: 32, batchTokens: 128, generation: { ...defaultEvalConfig.generation, samples: 1, maxNewTokens: 8 } };
  const base = { heldout: makeRecords('held', 4, 1), dev: makeRecords('dev', 3, 2), config, seed: 77, quiet: true, pool: { workers: 1, threads: 1 } };
  const native = await runEvaluation({ ...base, checkpoints: [{ epoch: 3, dir: nativeDir }], outDir: path.join(root, 'eval-native') });
  const hfOut = path.join(root, 'eval-hf');
  const hf = await runEvaluation({ ...base, checkpoints: [{ epoch: 3, dir: hfDir }], outDir: hfOut });
  assert.equal(hf.perCheckpoint[0]!.checkpointHash, native.perCheckpoint[0]!.checkpointHash);
  assert.deepEqual(hf.perplexity, native.perplexity);
  assert.deepEqual(hf.generations, native.generations, 'seedKey absent: seeded by epoch as before');
  // A seedKey equal to the epoch draws the same samples; another draws others.
  const same = await runEvaluation({ ...base, checkpoints: [{ epoch: 3, dir: hfDir, seedKey: 3 }], outDir: path.join(root, 'eval-hf-seed3') });
  assert.deepEqual(same.generations, native.generations);
  const other = await runEvaluation({ ...base, checkpoints: [{ epoch: 3, dir: hfDir, seedKey: 30 }], outDir: path.join(root, 'eval-hf-seed30') });
  assert.deepEqual(other.perplexity, native.perplexity);
  assert.notDeepEqual(other.generations.map((g) => g.response), native.generations.map((g) => g.response));
});

test('a tokenizer.json the library cannot load is a clear error naming the file', async () => {
  const { writeHfGpt2 } = await import('../../src/checkpoint/index.ts');
  const tok = makeTokenizer();
  const model: ModelConfig = { vocab: tok.vocabSize, context: 32, dModel: 16, layers: 1, heads: 2 };
  const dir = path.join(root, 'foreign');
  // GPT-2's tokenizer.json in miniature: a BPE without our special tokens.
  const foreign = { version: '1.0', model: { type: 'BPE', vocab: { '!': 0, '"': 1, '<|endoftext|>': 2 }, merges: [] } };
  await writeHfGpt2(dir, model, randomWeights(model, 3, 0.3), { tokenizer: foreign });
  const config: EvalConfig = { ...defaultEvalConfig, maxLength: 32, batchTokens: 128, generation: { ...defaultEvalConfig.generation, samples: 1, maxNewTokens: 4 } };
  await assert.rejects(
    runEvaluation({ checkpoints: [{ epoch: 1, dir, seedKey: 100 }], heldout: makeRecords('held', 2, 1), dev: makeRecords('dev', 1, 2), outDir: path.join(root, 'eval-foreign'), config, seed: 1, quiet: true, pool: { workers: 1, threads: 1 } }),
    /foreign\/tokenizer\.json: @huggingface\/tokenizers cannot load it: Tokenizer must contain a "decoder" property/,
  );
});

test('the same weights at the same position under another seedKey (the trainer\'s step) get their own generations, cached side by side', async () => {
  const { writeHfGpt2 } = await import('../../src/checkpoint/index.ts');
  const tok = makeTokenizer();
  const model: ModelConfig = { vocab: tok.vocabSize, context: 32, dModel: 16, layers: 1, heads: 2 };
  const weights = randomWeights(model, 21, 0.3);
  const dirA = path.join(root, 'seedkey-a');
  const dirB = path.join(root, 'seedkey-b');
  await writeHfGpt2(dirA, model, weights, { tokenizer: tok.toJSON() });
  await writeHfGpt2(dirB, model, weights, { tokenizer: tok.toJSON() });
  const config: EvalConfig = { ...defaultEvalConfig, maxLength: 32, batchTokens: 128, generation: { ...defaultEvalConfig.generation, samples: 2, maxNewTokens: 8 } };
  const outDir = path.join(root, 'eval-seedkey');
  const base = { heldout: makeRecords('held', 3, 1), dev: makeRecords('dev', 3, 2), config, seed: 5, quiet: true, pool: { workers: 1, threads: 1 }, outDir };
  const generated = 3 * 2;
  const responses = (r: { generations: Array<{ response: string }> }) => r.generations.map((g) => g.response);

  // One run, two checkpoints of identical weights (one content hash) and different steps.
  const both = await runEvaluation({ ...base, checkpoints: [{ epoch: 0.5, dir: dirA, seedKey: 100 }, { epoch: 1, dir: dirB, seedKey: 200 }] });
  assert.equal(both.perCheckpoint[0]!.checkpointHash, both.perCheckpoint[1]!.checkpointHash);
  assert.equal(both.computed.generations, 2 * generated);
  assert.deepEqual(both.generations.map((g) => g.seedKey), [...Array(generated).fill(100), ...Array(generated).fill(200)]);
  assert.notDeepEqual(responses({ generations: both.generations.slice(0, generated) }), responses({ generations: both.generations.slice(generated) }));

  // The same folder at the same position, its seed key changed (say trainer_state.json came
  // later): the key holds the seed key, so the cached samples of step 100 are not reused.
  const moved = await runEvaluation({ ...base, checkpoints: [{ epoch: 0.5, dir: dirA, seedKey: 300 }] });
  assert.equal(moved.computed.perplexity, 0, 'perplexity depends on the weights only: reused');
  assert.equal(moved.computed.generations, generated, 'no generation of seed key 100 reused for seed key 300');
  assert.ok(moved.generations.every((g) => g.seedKey === 300 && g.epoch === 0.5));
  const fresh = await runEvaluation({ ...base, outDir: path.join(root, 'eval-seedkey-fresh'), checkpoints: [{ epoch: 0.5, dir: dirA, seedKey: 300 }] });
  assert.deepEqual(moved.generations, fresh.generations, 'the samples a fresh run draws for seed key 300');
  // Both seed keys' samples stay cached: going back recomputes nothing.
  const back = await runEvaluation({ ...base, checkpoints: [{ epoch: 0.5, dir: dirA, seedKey: 100 }] });
  assert.deepEqual(back.computed, { perplexity: 0, generations: 0 });
  assert.deepEqual(back.generations, both.generations.slice(0, generated));

  // seedKey = epoch (our own runs) stores no seedKey: keys and cache lines as before the field existed.
  const own = await runEvaluation({ ...base, outDir: path.join(root, 'eval-seedkey-own'), checkpoints: [{ epoch: 2, dir: dirA, seedKey: 2 }] });
  const lines = (await fs.readFile(path.join(root, 'eval-seedkey-own', 'generations.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(lines.length, generated);
  assert.ok(lines.every((l) => !('seedKey' in JSON.parse(l))) && own.generations.every((g) => !('seedKey' in g)));
});

test('identical weights under two chat templates in one run: each scored with its own tokenizer, equal to evaluating it alone (issue 13)', async () => {
  const { writeHfGpt2 } = await import('../../src/checkpoint/index.ts');
  const tok = makeTokenizer();
  const model: ModelConfig = { vocab: tok.vocabSize, context: 32, dModel: 16, layers: 1, heads: 2 };
  const weights = randomWeights(model, 31, 0.3);
  // Our format (no template: our chat format) and the same files under another template.
  const dirOurs = path.join(root, 'tmpl-ours');
  const dirOther = path.join(root, 'tmpl-other');
  await writeHfGpt2(dirOurs, model, weights, { tokenizer: tok.toJSON() });
  const other = "{% for m in messages %}{{ '### ' + m['role'] + ':\\n' + m['content'] + '\\n\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}";
  await writeHfGpt2(dirOther, model, weights, { tokenizer: tok.toJSON(), tokenizerConfig: { chat_template: other, eos_token: '<|eot|>' } });
  const config: EvalConfig = { ...defaultEvalConfig, maxLength: 32, batchTokens: 128, generation: { ...defaultEvalConfig.generation, samples: 1, maxNewTokens: 4 } };
  const base = { heldout: makeRecords('held', 4, 1), dev: makeRecords('dev', 2, 2), config, seed: 3, quiet: true, pool: { workers: 1, threads: 1 } };
  const both = await runEvaluation({ ...base, checkpoints: [{ epoch: 1, dir: dirOurs }, { epoch: 2, dir: dirOther }], outDir: path.join(root, 'eval-tmpl-both') });
  assert.equal(both.perCheckpoint[0]!.checkpointHash, both.perCheckpoint[1]!.checkpointHash, 'one weights hash');
  assert.notEqual(both.perCheckpoint[0]!.perplexity, both.perCheckpoint[1]!.perplexity, 'another template scores other tokens');
  assert.notEqual(both.perplexity[0]!.settingsHash, both.perplexity[4]!.settingsHash);
  const alone = [
    await runEvaluation({ ...base, checkpoints: [{ epoch: 1, dir: dirOurs }], outDir: path.join(root, 'eval-tmpl-ours') }),
    await runEvaluation({ ...base, checkpoints: [{ epoch: 2, dir: dirOther }], outDir: path.join(root, 'eval-tmpl-other') }),
  ];
  assert.deepEqual(both.perCheckpoint, alone.flatMap((r) => r.perCheckpoint));
  assert.deepEqual(both.perplexity, alone.flatMap((r) => r.perplexity));
  assert.deepEqual(both.chatFormats.map((f) => f.description), alone.flatMap((r) => r.chatFormats.map((f) => f.description)));
  assert.deepEqual(both.heldoutCoverage, alone[0]!.heldoutCoverage, "coverage: the first checkpoint's tokenizer");
});
