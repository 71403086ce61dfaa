// What a series' positions count (the report's axis name): 'epoch' when placed by trainer_state.json's
// epoch, our manifest's epoch or an epoch in a GGUF name; 'step' when by the step or a GGUF file's
// step or bare number; 'position' for a series mixing the two.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ggufPositionUnit, listSeries, seriesPositionUnit } from '../../src/checkpoint/index.ts';
import { tempDir } from '../eval/helpers.ts';

const root = await tempDir('position-unit');
after(() => fs.rm(root, { recursive: true, force: true }));

async function hfFolder(dir: string, state: Record<string, unknown>): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
  await fs.writeFile(path.join(dir, 'trainer_state.json'), JSON.stringify(state));
}

test('HF folders: epoch from trainer_state.json -> epoch; global_step only -> step', async () => {
  await hfFolder(path.join(root, 'ep', 'checkpoint-42'), { epoch: 6, global_step: 42, log_history: [] });
  await hfFolder(path.join(root, 'ep', 'checkpoint-84'), { epoch: 12, global_step: 84, log_history: [] });
  const byEpoch = await listSeries({ dir: path.join(root, 'ep'), format: 'hf' }, 'checkpoints');
  assert.deepEqual(byEpoch.map((c) => [c.position, c.positionUnit]), [[6, 'epoch'], [12, 'epoch']]);
  assert.equal(seriesPositionUnit(byEpoch), 'epoch');

  await hfFolder(path.join(root, 'st', 'checkpoint-42'), { global_step: 42, log_history: [] });
  const bySteps = await listSeries({ dir: path.join(root, 'st'), format: 'hf' }, 'checkpoints');
  assert.deepEqual(bySteps.map((c) => [c.position, c.positionUnit]), [[42, 'step']]);
  assert.equal(seriesPositionUnit([...byEpoch, ...bySteps]), 'position', 'a mix is neither');
});

test('GGUF names: an epoch number -> epoch; a step, checkpoint or bare number -> step', () => {
  const table: Array<[string, 'epoch' | 'step']> = [
    ['model-step200.gguf', 'step'],
    ['checkpoint-500-Q8_0.gguf', 'step'],
    ['model-7.gguf', 'step'],
    ['epoch-3.gguf', 'epoch'],
    ['run-epoch2-step200-F32.gguf', 'epoch'],
    ['EPOCH_0.5-step-100.gguf', 'epoch'],
  ];
  for (const [name, unit] of table) assert.equal(ggufPositionUnit(path.join('gg', name)), unit, name);
});
