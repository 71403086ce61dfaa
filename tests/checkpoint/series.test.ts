// A checkpoint series trained elsewhere (issue 13): each folder placed by trainer_state.json's
// epoch (fractional when saved by steps), else its step; seeds keyed by step; the trainer's
// logged loss and eval_loss at or before each checkpoint; errors name the folder or key.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ggufPlace, listSeries } from '../../src/checkpoint/index.ts';
import { tempDir } from '../eval/helpers.ts';

const root = await tempDir('series');
after(() => fs.rm(root, { recursive: true, force: true }));

async function folder(dir: string, files: Record<string, unknown>): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), JSON.stringify(content));
}

// What HF Trainer logs with logging_steps=20 and eval every 50 steps, 75 steps per epoch.
const history = [
  { step: 20, epoch: 0.27, loss: 3.1 },
  { step: 40, epoch: 0.53, loss: 2.9 },
  { step: 50, epoch: 0.67, eval_loss: 3.0 },
  { step: 60, epoch: 0.8, loss: 2.7 },
  { step: 80, epoch: 1.07, loss: 2.5 },
  { step: 100, epoch: 1.33, loss: 2.4 },
  { step: 100, epoch: 1.33, eval_loss: 2.8 },
  { step: 120, epoch: 1.6, loss: 2.3 },
  { step: 140, epoch: 1.87, loss: 2.2 },
  { step: 150, epoch: 2.0, eval_loss: 2.75 },
];

test('HF run folders: fractional epochs, step seeds, logged losses at or before each step', async () => {
  const run = path.join(root, 'run');
  for (const step of [150, 50, 100]) {
    await folder(path.join(run, `checkpoint-${step}`), {
      'config.json': { model_type: 'gpt2' },
      'trainer_state.json': { epoch: step / 75, global_step: step, log_history: history.filter((h) => h.step <= step) },
    });
  }
  await fs.mkdir(path.join(run, 'runs'), { recursive: true }); // tensorboard logs: not a checkpoint, skipped with dir
  const series = await listSeries({ dir: run, format: 'auto' }, 'checkpoints');
  assert.deepEqual(series.map((c) => [path.basename(c.dir), c.format, c.position, c.step, c.seedKey]), [
    ['checkpoint-50', 'hf', 50 / 75, 50, 50],
    ['checkpoint-100', 'hf', 100 / 75, 100, 100],
    ['checkpoint-150', 'hf', 2, 150, 150],
  ]);
  assert.deepEqual(series.map((c) => c.trainer), [
    { loss: 2.9, evalLoss: 3.0, step: 50 },
    { loss: 2.4, evalLoss: 2.8, step: 100 },
    { loss: 2.2, evalLoss: 2.75, step: 150 },
  ]);
  assert.deepEqual(series.map((c) => c.trainLoss), [2.9, 2.4, 2.2]);
  // The last checkpoint's trainer_state holds the whole history: entries after a step are ignored.
  await folder(path.join(root, 'late', 'checkpoint-50'), { 'config.json': {}, 'trainer_state.json': { epoch: 0.67, global_step: 50, log_history: history } });
  assert.deepEqual((await listSeries({ dir: path.join(root, 'late'), format: 'hf' }, 'checkpoints'))[0]!.trainer, { loss: 2.9, evalLoss: 3.0, step: 50 });

  const globbed = await listSeries({ glob: path.join(run, 'checkpoint-1*'), format: 'hf' }, 'checkpoints');
  assert.deepEqual(globbed.map((c) => c.step), [100, 150]);
});

test('without trainer_state.json: the step from the folder name; our own folders by their epoch', async () => {
  const run = path.join(root, 'bare');
  for (const step of [200, 1000]) await folder(path.join(run, `checkpoint-${step}`), { 'config.json': {} });
  const series = await listSeries({ dir: run, format: 'auto' }, 'checkpoints');
  assert.deepEqual(series.map((c) => [c.format, c.position, c.seedKey, c.trainLoss, c.trainer]), [
    ['hf', 200, 200, null, undefined],
    ['hf', 1000, 1000, null, undefined],
  ]);
  const ours = path.join(root, 'ours');
  await folder(path.join(ours, 'epoch-03'), { 'manifest.json': { epoch: 3, step: 30, trainLoss: 1.25 } });
  const native = await listSeries({ dir: ours, format: 'auto' }, 'checkpoints');
  assert.deepEqual(native.map((c) => [c.format, c.position, c.seedKey, c.trainLoss, c.trainer]), [['native', 3, 3, 1.25, undefined]]);
});

test('series that do not belong together: mixed formats, mixed position units (epoch vs step); errors name the folders and why', async () => {
  // An HF folder beside a GGUF file, format auto.
  const mixed = path.join(root, 'hf-and-gguf');
  await folder(path.join(mixed, 'checkpoint-14'), { 'config.json': {}, 'trainer_state.json': { epoch: 1, global_step: 14 } });
  await fs.writeFile(path.join(mixed, 'model-step100.gguf'), 'x');
  await assert.rejects(
    listSeries({ dir: mixed, format: 'auto' }, 'cfg.json: checkpoints'),
    /^Error: cfg\.json: checkpoints: mixed formats in one series \(Hugging Face folders: .*checkpoint-14; GGUF files: .*model-step100\.gguf\): a series is the checkpoints of one run in one format/,
  );
  // Our folder beside an HF folder.
  const ours = path.join(root, 'native-and-hf');
  await folder(path.join(ours, 'checkpoint-5'), { 'config.json': {} });
  await folder(path.join(ours, 'epoch-01'), { 'manifest.json': { epoch: 1, step: 1, trainLoss: 1 } });
  await assert.rejects(listSeries({ dir: ours, format: 'auto' }, 'checkpoints'), /mixed formats in one series \(Hugging Face folders: .*checkpoint-5; lima-harness folders: .*epoch-01\)/);
  // HF folders, one with trainer_state.json (epoch 1) and one without (step 28): not one axis.
  const units = path.join(root, 'units');
  await folder(path.join(units, 'checkpoint-14'), { 'config.json': {}, 'trainer_state.json': { epoch: 1, global_step: 14 } });
  await folder(path.join(units, 'checkpoint-28'), { 'config.json': {} });
  for (const spec of [{ dir: units, format: 'auto' as const }, { glob: path.join(units, 'checkpoint-*'), format: 'hf' as const }]) {
    await assert.rejects(
      listSeries(spec, 'checkpoints'),
      /checkpoints: mixed position units \(epoch vs step\) in one series \(by epoch: .*units\/checkpoint-14; by step: .*units\/checkpoint-28\): an HF folder is placed by trainer_state\.json's epoch, else its step/,
    );
  }
  // GGUF files named by epoch beside files named by step.
  const gg = path.join(root, 'gguf-units');
  await fs.mkdir(gg, { recursive: true });
  for (const name of ['epoch-3.gguf', 'checkpoint-500.gguf']) await fs.writeFile(path.join(gg, name), 'x');
  await assert.rejects(listSeries({ dir: gg, format: 'gguf' }, 'checkpoints'), /mixed position units \(epoch vs step\) in one series \(by step: .*checkpoint-500\.gguf; by epoch: .*epoch-3\.gguf\): a GGUF file is placed by the epoch in its name/);
  // Once every folder has its epoch, the series is accepted.
  await folder(path.join(units, 'checkpoint-28'), { 'config.json': {}, 'trainer_state.json': { epoch: 2, global_step: 28 } });
  assert.deepEqual((await listSeries({ dir: units, format: 'auto' }, 'checkpoints')).map((c) => [c.position, c.step]), [[1, 14], [2, 28]]);
});

test('errors name the folder or the key', async () => {
  const run = path.join(root, 'bad');
  await folder(path.join(run, 'final'), { 'config.json': {} });
  await assert.rejects(listSeries({ dir: run, format: 'auto' }, 'checkpoints'), /bad\/final: no trainer_state\.json and the folder is not named checkpoint-<step>/);
  await folder(path.join(root, 'mixed', 'checkpoint-5'), { 'config.json': {} });
  await folder(path.join(root, 'mixed', 'epoch-01'), { 'manifest.json': { epoch: 1, step: 1, trainLoss: 1 } });
  await assert.rejects(listSeries({ dir: path.join(root, 'mixed'), format: 'hf' }, 'checkpoints'), /epoch-01: a lima-harness \(native\) checkpoint, but checkpoints\.format is "hf"/);
  await folder(path.join(root, 'dup', 'checkpoint-5'), { 'config.json': {}, 'trainer_state.json': { epoch: 1, global_step: 5 } });
  await folder(path.join(root, 'dup', 'checkpoint-6'), { 'config.json': {}, 'trainer_state.json': { epoch: 1, global_step: 6 } });
  await assert.rejects(listSeries({ dir: path.join(root, 'dup'), format: 'auto' }, 'checkpoints'), /checkpoint-5 and .*checkpoint-6: both at position 1/);
  await folder(path.join(root, 'badstate', 'checkpoint-5'), { 'config.json': {}, 'trainer_state.json': { epoch: 'one', global_step: 5 } });
  await assert.rejects(listSeries({ dir: path.join(root, 'badstate'), format: 'auto' }, 'checkpoints'), /checkpoint-5\/trainer_state\.json: epoch: expected a number, got "one"/);
  await fs.mkdir(path.join(root, 'empty', 'logs'), { recursive: true });
  await assert.rejects(listSeries({ dir: path.join(root, 'empty'), format: 'auto' }, 'checkpoints'), /checkpoints: no checkpoints \(folders or \.gguf files\) found in dir .*empty/);
  await assert.rejects(listSeries({ glob: path.join(root, 'empty', '*'), format: 'auto' }, 'checkpoints'), /empty\/logs: neither a Hugging Face checkpoint .* \(matched by checkpoints\.glob\)/);
  await assert.rejects(listSeries({ dir: path.join(root, 'nowhere'), format: 'auto' }, 'checkpoints'), /checkpoints\.dir: cannot list .*nowhere \(ENOENT\)/);
});

test('GGUF files: one checkpoint per file, placed, stepped and seeded by the step or epoch in the name; errors name the files', async () => {
  const run = path.join(root, 'gguf');
  await fs.mkdir(run, { recursive: true });
  // Contents are not read to place a file; listSeries only names them.
  for (const name of ['model-step1200.gguf', 'checkpoint-500.gguf', 'step-3.gguf', 'notes.txt']) await fs.writeFile(path.join(run, name), 'x');
  await fs.mkdir(path.join(run, 'logs'));
  const expected = [
    ['gguf', 3, 3, 3, null],
    ['gguf', 500, 500, 500, null],
    ['gguf', 1200, 1200, 1200, null],
  ];
  for (const spec of [{ dir: run, format: 'auto' as const }, { dir: run, format: 'gguf' as const }, { glob: path.join(run, '*.gguf'), format: 'gguf' as const }]) {
    const series = await listSeries(spec, 'checkpoints');
    assert.deepEqual(series.map((c) => [c.format, c.position, c.step, c.seedKey, c.trainLoss]), expected, JSON.stringify(spec));
    assert.deepEqual(series.map((c) => path.basename(c.dir)), ['step-3.gguf', 'checkpoint-500.gguf', 'model-step1200.gguf']);
  }
  await assert.rejects(listSeries({ dir: run, format: 'hf' }, 'checkpoints'), /checkpoint-500\.gguf: a GGUF file, but checkpoints\.format is "hf"/);

  const bad = path.join(root, 'gguf-bad');
  await fs.mkdir(bad, { recursive: true });
  for (const name of ['final.gguf', 'last.gguf', 'epoch-2.gguf']) await fs.writeFile(path.join(bad, name), 'x');
  await assert.rejects(listSeries({ dir: bad, format: 'gguf' }, 'cfg.json: checkpoints'), /cfg\.json: checkpoints: GGUF file names without a number: .*final\.gguf, .*last\.gguf: a GGUF series is placed by the step or epoch in each file name: name GGUF files by step/);
  const dup = path.join(root, 'gguf-dup');
  await fs.mkdir(dup, { recursive: true });
  for (const name of ['run1-step-2.gguf', 'run2-step2.gguf']) await fs.writeFile(path.join(dup, name), 'x');
  await assert.rejects(listSeries({ glob: path.join(dup, '*.gguf'), format: 'gguf' }, 'checkpoints'), /run1-step-2\.gguf and .*run2-step2\.gguf: both at position 2 \(the step or epoch in the GGUF file name\)/);
});

test('ggufPlace: a trailing ggml type is ignored, step/checkpoint/epoch numbers win, one bare number counts, anything ambiguous is an error naming the file', () => {
  // [file name, position, step, seed key]
  const table: Array<[string, number, number, number]> = [
    ['epoch-0.5-step-500.gguf', 0.5, 500, 500],
    ['epoch-1.0.gguf', 1, 1, 1],
    ['epoch-3.gguf', 3, 3, 3],
    ['epoch_12.gguf', 12, 12, 12],
    ['run-step100-F16.gguf', 100, 100, 100],
    ['run-step200-Q8_0.gguf', 200, 200, 200],
    ['run-step300.Q4_K_M.gguf', 300, 300, 300],
    ['run-step400_bf16.GGUF', 400, 400, 400],
    ['run-step500-IQ2_XXS.gguf', 500, 500, 500],
    ['llama-7b-step1200-f32.gguf', 1200, 1200, 1200],
    ['checkpoint-500.gguf', 500, 500, 500],
    ['ckpt_42-Q8_0.gguf', 42, 42, 42],
    ['model-step1200.gguf', 1200, 1200, 1200],
    ['Step7.gguf', 7, 7, 7],
    ['epoch2-checkpoint-1500.gguf', 2, 1500, 1500],
    ['model-7.gguf', 7, 7, 7],
    ['model-7-Q8_0.gguf', 7, 7, 7],
    ['/runs/x/0042.gguf', 42, 42, 42],
  ];
  for (const [name, position, step, seedKey] of table) assert.deepEqual(ggufPlace(name), { position, step, seedKey }, name);
  assert.equal(ggufPlace('final.gguf'), undefined, 'no number');
  assert.equal(ggufPlace('final-F16.gguf'), undefined, 'the type token is no number');
  const errors: Array<[string, RegExp]> = [
    ['epoch-0.5.gguf', /epoch-0\.5\.gguf: epoch 0\.5 is fractional and the name has no step to seed generations by .*epoch-0\.5-step-500\.gguf/],
    ['llama-7b-100.gguf', /llama-7b-100\.gguf: the file name has 2 numbers \(7, 100\) and none is marked as the step or epoch: name GGUF files by step/],
    ['run2-v3.gguf', /run2-v3\.gguf: the file name has 2 numbers/],
    ['step-1-step-2.gguf', /step-1-step-2\.gguf: the file name has two step \(step\/checkpoint\/ckpt\) numbers \(1 and 2\)/],
    ['checkpoint-5-step-6.gguf', /two step .*\(5 and 6\)/],
    ['epoch-1-epoch-2.gguf', /two epoch numbers \(1 and 2\)/],
    ['step-1.5.gguf', /step-1\.5\.gguf: step 1\.5 in the file name is not a whole number/],
  ];
  for (const [name, message] of errors) assert.throws(() => ggufPlace(name), message, name);
});

test('GGUF series: a fractional epoch without a step fails listSeries naming the file; epoch names sort by their value, not their digits', async () => {
  const run = path.join(root, 'gguf-epochs');
  await fs.mkdir(run, { recursive: true });
  for (const name of ['epoch-1.0-step-200.gguf', 'epoch-0.5-step-100.gguf', 'epoch-1.5-step-300.gguf']) await fs.writeFile(path.join(run, name), 'x');
  const series = await listSeries({ dir: run, format: 'gguf' }, 'checkpoints');
  assert.deepEqual(series.map((c) => [c.position, c.step, c.seedKey]), [[0.5, 100, 100], [1, 200, 200], [1.5, 300, 300]]);
  await fs.writeFile(path.join(run, 'epoch-2.5.gguf'), 'x');
  await assert.rejects(listSeries({ dir: run, format: 'gguf' }, 'checkpoints'), /epoch-2\.5\.gguf: epoch 2\.5 is fractional/);
});

test('a NaN or Infinity logged at a checkpoint (a diverged run) makes its loss null, not the older finite value', async () => {
  const run = path.join(root, 'diverged');
  // Python's json.dumps writes NaN and Infinity as bare words.
  const state = (step: number, last: string) =>
    `{"epoch": ${step / 75}, "global_step": ${step}, "log_history": [{"step": 20, "loss": 3.1}, {"step": 50, "eval_loss": 3.0}, ${last}]}`;
  await fs.mkdir(path.join(run, 'checkpoint-60'), { recursive: true });
  await fs.writeFile(path.join(run, 'checkpoint-60', 'config.json'), '{"model_type": "gpt2"}');
  await fs.writeFile(path.join(run, 'checkpoint-60', 'trainer_state.json'), state(60, '{"step": 60, "loss": NaN, "eval_loss": Infinity}'));
  await fs.mkdir(path.join(run, 'checkpoint-75'), { recursive: true });
  await fs.writeFile(path.join(run, 'checkpoint-75', 'config.json'), '{"model_type": "gpt2"}');
  await fs.writeFile(path.join(run, 'checkpoint-75', 'trainer_state.json'), state(75, '{"step": 60, "loss": NaN}, {"step": 75, "loss": 2.5}'));
  const series = await listSeries({ dir: run, format: 'hf' }, 'checkpoints');
  assert.deepEqual(series.map((c) => c.trainer), [
    { loss: null, evalLoss: null, step: 60 },
    { loss: 2.5, evalLoss: 3.0, step: 75 },
  ]);
  assert.equal(series[0]!.trainLoss, null);
});

test('a base copied in as checkpoint-0 without trainer_state.json joins a series placed by epoch (0 is 0 in either unit)', async () => {
  const run = path.join(root, 'with-base');
  await folder(path.join(run, 'checkpoint-0'), { 'config.json': { model_type: 'gpt2' } });
  for (const step of [75, 150]) {
    await folder(path.join(run, `checkpoint-${step}`), { 'config.json': { model_type: 'gpt2' }, 'trainer_state.json': { epoch: step / 75, global_step: step, log_history: [] } });
  }
  const series = await listSeries({ dir: run, format: 'hf' }, 'checkpoints');
  assert.deepEqual(series.map((c) => [c.position, c.positionUnit]), [[0, 'epoch'], [1, 'epoch'], [2, 'epoch']]);
  // A folder at another step without trainer_state.json still mixes units.
  await folder(path.join(run, 'checkpoint-30'), { 'config.json': { model_type: 'gpt2' } });
  await assert.rejects(listSeries({ dir: run, format: 'hf' }, 'checkpoints'), /mixed position units[\s\S]*checkpoint-30/);
});
