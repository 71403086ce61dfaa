// Bounded submission (src/eval/window.ts): at most `window` checkpoints in flight, started in
// order, and the pooled evaluation's results unchanged by the window.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { checkpointWindow, runWindowed } from '../../src/eval/window.ts';
import { runEvaluation } from '../../src/eval/index.ts';
import { defaultEvalConfig, type EvalConfig } from '../../src/eval/config.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { makeRecords, tempDir, writeCheckpoints } from './helpers.ts';

const root = await tempDir('window');
after(() => fs.rm(root, { recursive: true, force: true }));

/** A fake runner: items finish after a few seeded ticks, so groups overlap and finish out of order. */
function fakeRun(seed: number) {
  const rng = mulberry32(seed);
  const inFlight = new Map<number, number>(); // group -> items started and not finished
  const started: number[] = [];
  const done: string[] = [];
  let maxInFlight = 0;
  const run = async (item: string, group: number): Promise<void> => {
    if (!started.includes(group)) started.push(group);
    inFlight.set(group, (inFlight.get(group) ?? 0) + 1);
    maxInFlight = Math.max(maxInFlight, inFlight.size);
    const ticks = Math.floor(rng() * 5);
    for (let i = 0; i < ticks; i++) await new Promise((resolve) => setImmediate(resolve));
    done.push(item);
    const left = inFlight.get(group)! - 1;
    if (left === 0) inFlight.delete(group);
    else inFlight.set(group, left);
  };
  return { run, started, done, max: () => maxInFlight };
}

const groups = [5, 1, 0, 7, 3, 2, 6, 4, 1, 5, 3].map((n, g) => Array.from({ length: n }, (_, i) => `${g}.${i}`));
const all = groups.flat().sort();

test('runWindowed keeps at most `window` groups in flight, starts them in order and runs every item once', async () => {
  for (const window of [1, 2, 3]) {
    const fake = fakeRun(window);
    await runWindowed(groups, window, fake.run);
    assert.ok(fake.max() <= window, `window ${window}: ${fake.max()} groups in flight`);
    assert.deepEqual(fake.started, groups.flatMap((g, i) => (g.length > 0 ? [i] : [])), 'groups start in order');
    assert.deepEqual([...fake.done].sort(), all);
  }
  const sequential = fakeRun(9);
  await runWindowed(groups, 1, sequential.run);
  const groupOf = (item: string) => Number(item.split('.')[0]);
  assert.deepEqual(sequential.done.map(groupOf), [...sequential.done.map(groupOf)].sort((a, b) => a - b), 'window 1: a group finishes before the next starts');
  const unbounded = fakeRun(4);
  await runWindowed(groups, Infinity, unbounded.run);
  assert.ok(unbounded.max() > 3, `everything at once: ${unbounded.max()} groups in flight`);
  assert.equal(checkpointWindow(2), 3);
  assert.equal(checkpointWindow(1), 2);
});

test('runWindowed: stop() and a failure start no further group; the failure is rethrown after the started items settle', async () => {
  const fake = fakeRun(3);
  await runWindowed(groups, 2, fake.run, () => fake.started.length >= 4);
  assert.ok(fake.started.length <= 5 && fake.started.length >= 4, `${fake.started.length} groups started`);
  const seen: string[] = [];
  let settled = 0;
  await assert.rejects(
    runWindowed(groups, 2, async (item, group) => {
      seen.push(item);
      await new Promise((resolve) => setImmediate(resolve));
      settled++;
      if (item === '3.2') throw new Error('boom at 3.2');
    }),
    /boom at 3\.2/,
  );
  assert.equal(settled, seen.length, 'every started item settled before the rejection');
  assert.ok(!seen.some((item) => Number(item.split('.')[0]) >= 6), 'no group started after the failure');
  await assert.rejects(runWindowed(groups, 0, fake.run), /window must be at least 1/);
});

test('the pool evaluated with one checkpoint in flight gives the results of everything at once; its generations land checkpoint by checkpoint', async () => {
  const { list } = await writeCheckpoints(path.join(root, 'run'), 4, { context: 32, dModel: 16, layers: 1, heads: 2 });
  const config: EvalConfig = { ...defaultEvalConfig, maxLength: 32, batchTokens: 96, generation: { ...defaultEvalConfig.generation, samples: 2, maxNewTokens: 6 } };
  const base = { checkpoints: list, heldout: makeRecords('held', 10, 1), dev: makeRecords('dev', 4, 2), config, seed: 11, quiet: true, pool: { workers: 2, threads: 1 } };
  const unbounded = await runEvaluation({ ...base, outDir: path.join(root, 'all'), window: Infinity });
  const one = await runEvaluation({ ...base, outDir: path.join(root, 'one'), window: 1 });
  const two = await runEvaluation({ ...base, outDir: path.join(root, 'default') });
  for (const r of [one, two]) {
    assert.deepEqual(r.perCheckpoint, unbounded.perCheckpoint);
    assert.deepEqual(r.perplexity, unbounded.perplexity);
    assert.deepEqual(r.generations, unbounded.generations);
    assert.deepEqual(r.computed, unbounded.computed);
  }
  assert.equal(unbounded.generations.length, 4 * 4 * 2);
  // Results stream to the file as they finish: with one checkpoint in flight, in checkpoint order.
  for (const file of ['generations.jsonl', 'perplexity.jsonl']) {
    const epochs = (await fs.readFile(path.join(root, 'one', file), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    assert.deepEqual(epochs, [...epochs].sort((a, b) => a - b), `${file}: checkpoint by checkpoint`);
    assert.deepEqual([...new Set(epochs)], [1, 2, 3, 4]);
  }
});
