// A diverged run's checkpoint (issue 13): NaN / ±Infinity weights are refused when the checkpoint
// is loaded, naming the file, the tensor and the count, for every reader (HF safetensors, GGUF,
// ours) and through the perplexity command (which printed nll null and exited 0 before).
// Python's NaN / Infinity tokens in trainer_state.json and config.json are read (json5).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadAnyCheckpoint, parseGgufHeader, writeCheckpoint, writeHfGpt2, listSeries } from '../../src/checkpoint/index.ts';
import { parsePythonJson } from '../../src/checkpoint/json.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { NamedWeights } from '../../src/model/weights.ts';
import { makeTokenizer, randomWeights, tempDir } from '../eval/helpers.ts';
import { tinyLlamaGguf } from '../helpers/gguf-llama.ts';

const root = await tempDir('finite');
after(() => fs.rm(root, { recursive: true, force: true }));
const cli = path.resolve(import.meta.dirname, '../../bin/lima-harness.mjs');

const tok = makeTokenizer();
const model: ModelConfig = { vocab: tok.vocabSize, context: 32, dModel: 16, layers: 1, heads: 2 };

/** A copy of `weights` with `values` written at the start of tensor `name`. */
function poisoned(weights: NamedWeights, name: string, values: number[]): NamedWeights {
  const out: NamedWeights = new Map([...weights].map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.data) }]));
  out.get(name)!.data.set(values, 0);
  return out;
}

test('HF safetensors with NaN / Infinity weights: loading throws naming model.safetensors, the HF tensor and the counts', async () => {
  const weights = randomWeights(model, 4, 0.3);
  const good = path.join(root, 'hf-good');
  await writeHfGpt2(good, model, weights, { tokenizer: tok.toJSON() });
  assert.equal((await loadAnyCheckpoint(good)).model.dModel, 16, 'finite weights load');
  const bad = path.join(root, 'hf-nan');
  await writeHfGpt2(bad, model, poisoned(poisoned(weights, 'h.0.mlp.w1', [NaN, NaN, Infinity]), 'lnf.gamma', [-Infinity]), { tokenizer: tok.toJSON() });
  await assert.rejects(
    loadAnyCheckpoint(bad),
    /^Error: .*hf-nan\/model\.safetensors: tensor transformer\.h\.0\.mlp\.c_fc\.weight: 3 of 1024 values are not finite \(2 NaN, 1 ±Infinity\); 1 more tensor affected, 4 non-finite values in all: the run diverged\? exclude it from the series$/,
  );
});

test('GGUF with NaN weights: loading throws naming the file and the GGUF tensor; the perplexity command fails (exit 1) instead of printing nll null', async () => {
  const bytes = tinyLlamaGguf(7);
  const good = path.join(root, 'step-1.gguf');
  await fs.writeFile(good, bytes);
  const header = parseGgufHeader(bytes, good);
  const info = header.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!;
  const bad = Uint8Array.from(bytes);
  new DataView(bad.buffer).setFloat32(header.dataStart + info.offset + 8, NaN, true);
  const badFile = path.join(root, 'step-2.gguf');
  await fs.writeFile(badFile, bad);
  await assert.rejects(loadAnyCheckpoint(badFile), /step-2\.gguf: tensor blk\.0\.ffn_up\.weight: 1 of 384 values are not finite \(1 NaN, 0 ±Infinity\): the run diverged\? exclude it from the series/);

  const text = path.join(root, 'story.txt');
  await fs.writeFile(text, 'Once upon a time there was a small model.\n');
  const ok = spawnSync(process.execPath, [cli, 'perplexity', '--model', good, '--text', text], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(Number.isFinite(JSON.parse(ok.stdout).nll));
  const r = spawnSync(process.execPath, [cli, 'perplexity', '--model', badFile, '--text', text], { encoding: 'utf8' });
  assert.notEqual(r.status, 0, `exit ${r.status}, stdout ${r.stdout}`);
  assert.equal(r.stdout, '', 'no result line');
  assert.match(r.stderr, /step-2\.gguf: tensor blk\.0\.ffn_up\.weight: 1 of 384 values are not finite .*the run diverged\? exclude it from the series/);
});

test('our own checkpoints are checked too (weights.bin)', async () => {
  const meta = { epoch: 1, step: 1, trainLoss: 1, dataHash: 'test', configHash: 'test', backend: 'test' };
  const dir = await writeCheckpoint(path.join(root, 'run'), { model, weights: poisoned(randomWeights(model, 2, 0.3), 'wte', [Infinity]), tokenizer: tok.toJSON() }, meta);
  await assert.rejects(loadAnyCheckpoint(dir), /epoch-01\/weights\.bin: tensor wte: 1 of \d+ values are not finite \(0 NaN, 1 ±Infinity\)/);
});

test("Python's NaN / Infinity / -Infinity in trainer_state.json and config.json are read; other broken JSON still names the file", async () => {
  assert.deepEqual(parsePythonJson('{"a": NaN, "b": [Infinity, -Infinity], "s": "NaN"}', 'x.json'), { a: NaN, b: [Infinity, -Infinity], s: 'NaN' });
  assert.throws(() => parsePythonJson('{"a": nan}', 'dir/trainer_state.json'), /^Error: dir\/trainer_state\.json: not JSON \(/);
  assert.throws(() => parsePythonJson('{"a": 1', 'dir/trainer_state.json'), /^Error: dir\/trainer_state\.json: not JSON \(/);

  const run = path.join(root, 'hf-run');
  const dir = path.join(run, 'checkpoint-14');
  await writeHfGpt2(dir, model, randomWeights(model, 5, 0.3), { tokenizer: tok.toJSON() });
  // What transformers writes after a step whose gradient norm overflowed.
  await fs.writeFile(
    path.join(dir, 'trainer_state.json'),
    '{\n  "epoch": 1.0,\n  "global_step": 14,\n  "log_history": [\n    {"epoch": 0.5, "grad_norm": NaN, "learning_rate": 1e-05, "loss": 2.5, "step": 7},\n    {"epoch": 1.0, "grad_norm": Infinity, "loss": 2.25, "step": 14}\n  ]\n}\n',
  );
  const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2).replace(/\n}$/, ',\n  "some_python_float": NaN\n}'));
  const series = await listSeries({ dir: run, format: 'auto' }, 'checkpoints');
  assert.deepEqual(series.map((c) => [c.position, c.step, c.trainLoss]), [[1, 14, 2.25]]);
  const ck = await loadAnyCheckpoint(dir);
  assert.deepEqual([ck.manifest.epoch, ck.manifest.step, ck.manifest.trainLoss], [1, 14, 2.25]);
  await fs.writeFile(path.join(dir, 'trainer_state.json'), '{"epoch": 1.0, "global_step": 14,');
  await assert.rejects(listSeries({ dir: run, format: 'auto' }, 'checkpoints'), /checkpoint-14\/trainer_state\.json: not JSON \(/);
});
