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
