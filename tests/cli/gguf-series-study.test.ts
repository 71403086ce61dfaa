// A study over a series of GGUF files (issue 13: "a list of GGUF files, one per checkpoint"):
// three small random llamas written as run-epoch1-step100-F32.gguf, run-epoch2-step200-F32.gguf
// and run-epoch3-step300-F32.gguf, read through `checkpoints: {glob: "run/*.gguf", format:
// "gguf"}`. The data, evaluation, judging, analysis and report stages run unchanged: metrics.json
// has the three checkpoints at the epochs the file names give (the type token ignored),
// generations are seeded by the steps (stored as seedKey, since they differ from the epochs),
// prompts go through the plain template (the files carry no chat template), and the report is written.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { tinyLlamaGguf } from '../helpers/gguf-llama.ts';
import { tempDir } from '../eval/helpers.ts';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'bin/lima-harness.mjs');
const dir = await tempDir('gguf-series');
after(() => fs.rm(dir, { recursive: true, force: true }));

test('a study over three GGUF files: one checkpoint per file at the epochs of their names, seeded by their steps, metrics.json and a report', async () => {
  await fs.mkdir(path.join(dir, 'run'), { recursive: true });
  for (const step of [300, 100, 200]) await fs.writeFile(path.join(dir, 'run', `run-epoch${step / 100}-step${step}-F32.gguf`), tinyLlamaGguf(step));
  await fs.writeFile(path.join(dir, 'run', 'README.txt'), 'not a checkpoint');
  const config = {
    name: 'gguf-run',
    seed: 5,
    data: { builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: 8, heldout: 12, dev: 3 } },
    checkpoints: { glob: 'run/*.gguf', format: 'gguf' },
    eval: { workers: 1, maxLength: 64, generation: { samples: 1, maxNewTokens: 4 } },
    judge: { kind: 'rubric' },
    analysis: { window: [1, 3], bootstrap: 20 },
  };
  await fs.writeFile(path.join(dir, 'gguf.json'), JSON.stringify(config));
  const r = spawnSync(process.execPath, [cli, 'experiment', '--config', 'gguf.json'], { cwd: dir, encoding: 'utf8', env: { ...process.env, LIMA_QUIET: '1' } });
  assert.equal(r.status, 0, `experiment failed:\n${r.stderr}`);

  const metrics = JSON.parse(await fs.readFile(path.join(dir, 'reports/gguf-run/metrics.json'), 'utf8'));
  assert.deepEqual(metrics.epochs.map((e: { epoch: number }) => e.epoch), [1, 2, 3]);
  for (const e of metrics.epochs as Array<{ epoch: number; perplexity: number; trainLoss: unknown }>) {
    // Random weights over a 300-token vocabulary: finite perplexities, far from a trained model's.
    assert.ok(Number.isFinite(e.perplexity) && e.perplexity > 1, `epoch ${e.epoch}: perplexity ${e.perplexity}`);
    assert.equal(e.trainLoss, null, 'GGUF files carry no training loss');
  }
  assert.equal(new Set(metrics.epochs.map((e: { perplexity: number }) => e.perplexity)).size, 3, 'three different checkpoints');
  assert.match(metrics.backend.training, /imported checkpoint series \(gguf\)/);
  assert.deepEqual(metrics.chatFormat.map((f: { epochs: number[] }) => f.epochs), [[1, 2, 3]]);
  assert.match(metrics.chatFormat[0].description, /^plain template/);
  assert.ok([1, 2, 3].includes(metrics.selection.epoch), `selected ${metrics.selection.epoch}`);
  // Generation seeds derive from the step in the file name, not the epoch: every stored record carries it.
  const gens = (await fs.readFile(path.join(dir, 'checkpoints/gguf-run/eval/generations.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; seedKey?: number });
  assert.ok(gens.length >= 9, `${gens.length} generations`);
  assert.deepEqual([...new Set(gens.map((g) => `${g.epoch}:${g.seedKey}`))].sort(), ['1:100', '2:200', '3:300']);
  const html = await fs.readFile(path.join(dir, 'reports/gguf-run/index.html'), 'utf8');
  assert.match(html, /plain template/);
  // The file to ship, named as the config's glob gives it; no empty training-loss chart.
  assert.deepEqual(metrics.epochs.map((e: { checkpoint: string }) => e.checkpoint), [1, 2, 3].map((n) => `run/run-epoch${n}-step${n * 100}-F32.gguf`));
  assert.equal(metrics.positionUnit, 'epoch', 'the names carry epochs');
  const sel = metrics.selection.epoch;
  assert.ok(html.includes(`Ship <strong><code>run/run-epoch${sel}-step${sel * 100}-F32.gguf</code></strong> (epoch ${sel})`));
  assert.match(html, /no training-loss chart/);
  await assert.rejects(fs.access(path.join(dir, 'reports/gguf-run/chart-trainloss.svg')));
  console.log(`# GGUF series study: positions ${metrics.epochs.map((e: { epoch: number }) => e.epoch).join(', ')}, perplexities ${metrics.epochs.map((e: { perplexity: number }) => e.perplexity.toFixed(1)).join(', ')}`);
});
