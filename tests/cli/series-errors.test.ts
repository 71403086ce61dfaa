// A config whose checkpoint series cannot be listed, or does not belong together (issue 13),
// fails before the data stage: the error names the folders and why, and nothing is written
// (no checkpoints/<name>/ with its data, run.json or durations.json).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tempDir } from '../eval/helpers.ts';

const cli = path.resolve(import.meta.dirname, '../../bin/lima-harness.mjs');
const dir = await tempDir('series-errors');
after(() => fs.rm(dir, { recursive: true, force: true }));

const exists = (p: string) => fs.access(p).then(() => true, () => false);

async function experiment(name: string, checkpoints: Record<string, unknown>): Promise<{ status: number | null; stderr: string }> {
  const config = {
    name,
    seed: 7,
    data: { builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: 8, heldout: 8, dev: 2 } },
    checkpoints,
    eval: { workers: 1, maxLength: 32, generation: { samples: 1, maxNewTokens: 4 } },
    judge: { kind: 'rubric' },
    analysis: { window: [1, 2], bootstrap: 20 },
  };
  await fs.writeFile(path.join(dir, `${name}.json`), JSON.stringify(config));
  const r = spawnSync(process.execPath, [cli, 'experiment', '--config', `${name}.json`], { cwd: dir, encoding: 'utf8', env: { ...process.env, LIMA_QUIET: '1' } });
  return { status: r.status, stderr: r.stderr };
}

test('checkpoints that cannot be listed, mixed formats, mixed position units: an error naming the folders, and nothing written', async () => {
  // An HF folder and a GGUF file in one dir (format auto).
  await fs.mkdir(path.join(dir, 'mixed', 'checkpoint-14'), { recursive: true });
  await fs.writeFile(path.join(dir, 'mixed', 'checkpoint-14', 'config.json'), '{"model_type": "gpt2"}');
  await fs.writeFile(path.join(dir, 'mixed', 'model-step100.gguf'), 'x');
  // Two HF folders, one with trainer_state.json (epoch) and one without (step).
  for (const step of [14, 28]) {
    await fs.mkdir(path.join(dir, 'units', `checkpoint-${step}`), { recursive: true });
    await fs.writeFile(path.join(dir, 'units', `checkpoint-${step}`, 'config.json'), '{"model_type": "gpt2"}');
  }
  await fs.writeFile(path.join(dir, 'units', 'checkpoint-14', 'trainer_state.json'), '{"epoch": 1.0, "global_step": 14, "log_history": [{"grad_norm": NaN, "loss": 2.0, "step": 14}]}');
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing', { dir: 'nowhere' }, /checkpoints\.dir: cannot list .*nowhere \(ENOENT\)/],
    ['mixed', { dir: 'mixed' }, /checkpoints: mixed formats in one series \(Hugging Face folders: .*mixed\/checkpoint-14; GGUF files: .*mixed\/model-step100\.gguf\)/],
    ['units', { dir: 'units', format: 'hf' }, /checkpoints: mixed position units \(epoch vs step\) in one series \(by epoch: .*units\/checkpoint-14; by step: .*units\/checkpoint-28\)/],
  ];
  for (const [name, checkpoints, message] of cases) {
    const r = await experiment(name, checkpoints);
    assert.notEqual(r.status, 0, `${name}: exit ${r.status}`);
    assert.match(r.stderr, message, name);
    assert.equal(await exists(path.join(dir, 'checkpoints', name)), false, `${name}: checkpoints/${name} was written`);
    assert.equal(await exists(path.join(dir, 'reports', name)), false, `${name}: reports/${name} was written`);
  }
  assert.equal(await exists(path.join(dir, 'checkpoints')), false, 'no checkpoints/ at all');
});
