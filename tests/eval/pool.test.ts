// The pooled evaluation end to end: results, reuse on rerun, resume after kill -9 with
// identical numbers, and a failing task retried once then failing the run with a clear message.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runEvaluation, type EvaluationResult } from '../../src/eval/index.ts';
import { summarizeScores } from '../../src/eval/scoring.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { generateIds } from '../../src/eval/generate.ts';
import { encodePrompt } from '../../src/data/chat-format.ts';
import { BpeTokenizer } from '../../src/data/tokenizer.ts';
import { loadCheckpoint } from '../../src/checkpoint/index.ts';
import { deriveSeed } from '../../src/util/rng.ts';
import { evalFixture } from './pool-fixture.ts';
import { tempDir } from './helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = await tempDir('pool');
const runDir = path.join(root, 'run');
const fixture = await evalFixture(runDir);
const totalPerplexity = fixture.checkpoints.length * fixture.heldout.length;
const totalGenerations = fixture.checkpoints.length * fixture.dev.length * fixture.config.generation.samples;

let reference: EvaluationResult;
/** Scoring windows over all checkpoints (perplexity.jsonl holds one line per window). */
let totalWindows = 0;

async function lines(file: string): Promise<string[]> {
  try {
    return (await fs.readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0);
  } catch {
    return [];
  }
}

test('runEvaluation scores and generates for every checkpoint; a rerun computes nothing', async () => {
  const outDir = path.join(root, 'full');
  reference = await runEvaluation({ ...fixture, outDir, quiet: true });
  totalWindows = reference.heldoutCoverage.windows * fixture.checkpoints.length;
  assert.equal(reference.perplexity.length, totalPerplexity);
  assert.equal(reference.generations.length, totalGenerations);
  // Every answer token scored once; the long fixtures needed a cut prompt and rolling windows.
  const cov = reference.heldoutCoverage;
  assert.equal(cov.scoredTokens, cov.answerTokens);
  assert.equal(cov.coverage, 1);
  assert.ok(cov.promptCut >= 1 && cov.promptCut < cov.examples, `${cov.promptCut} prompts cut (the long one at least)`);
  assert.ok(cov.multiWindow >= 2 && cov.windows > fixture.heldout.length);
  assert.equal(cov.window, 64);
  assert.equal(cov.stride, 63);
  const windowsOf = (id: string) => reference.perplexity.find((p) => p.exampleId === id && p.epoch === 1)!.windows;
  assert.equal(windowsOf('held-long-000'), 1, 'a long prompt with a short answer: one window');
  assert.ok(windowsOf('held-long-001') > 1 && windowsOf('held-long-002') > 1, 'long answers: rolling windows');
  assert.deepEqual(reference.computed, { perplexity: totalWindows, generations: totalGenerations });
  assert.deepEqual(reference.perCheckpoint.map((c) => c.epoch), [1, 2, 3]);
  for (const c of reference.perCheckpoint) {
    const rows = reference.perplexity.filter((p) => p.epoch === c.epoch);
    const s = summarizeScores(rows);
    assert.ok(Math.abs(c.perplexity - Math.exp(s.nll / s.tokens)) < 1e-9);
    assert.ok(c.perplexity > 1 && Number.isFinite(c.perplexity));
    assert.ok(rows.every((r) => r.tokens > 0 && r.bytes > 0 && r.nll > 0));
  }
  // Different checkpoints give different perplexities.
  assert.notEqual(reference.perCheckpoint[0]!.perplexity, reference.perCheckpoint[1]!.perplexity);
  assert.equal((await lines(path.join(outDir, 'perplexity.jsonl'))).length, totalWindows);
  assert.equal((await lines(path.join(outDir, 'generations.jsonl'))).length, totalGenerations);

  const onnxStat = await fs.stat(path.join(outDir, 'onnx', '1.onnx'));
  const again = await runEvaluation({ ...fixture, outDir, quiet: true });
  assert.deepEqual(again.computed, { perplexity: 0, generations: 0 });
  assert.deepEqual(again.perplexity, reference.perplexity);
  assert.deepEqual(again.generations, reference.generations);
  assert.equal((await fs.stat(path.join(outDir, 'onnx', '1.onnx'))).mtimeMs, onnxStat.mtimeMs, 'ONNX file reused');
});

test('any one generation can be reproduced alone from its seed', async () => {
  const g = reference.generations.find((r) => r.epoch === 2 && r.sample === 1)!;
  const ck = await loadCheckpoint(fixture.checkpoints[1]!.dir);
  const tok = BpeTokenizer.fromJSON(ck.tokenizer);
  const record = fixture.dev.find((r) => r.id === g.exampleId)!;
  const session = await DecoderSession.create(path.join(root, 'full', 'onnx', '2.onnx'), ck.model, { threads: 1 });
  const out = await generateIds(session, encodePrompt(tok, record.turns.slice(0, 1)), fixture.config.generation, {
    seed: deriveSeed(fixture.seed, g.epoch, g.exampleId, g.sample),
    eot: tok.special.eot,
  });
  assert.equal(tok.decode(out.ids, { skipSpecial: true }), g.response);
  assert.equal(out.newTokens, g.newTokens);
  await session.release();
});

test('kill -9 mid-run, rerun: completes with identical numbers and recomputes nothing finished', async () => {
  const outDir = path.join(root, 'killed');
  const genFile = path.join(outDir, 'generations.jsonl');
  const pplFile = path.join(outDir, 'perplexity.jsonl');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'eval-child.ts'), outDir, runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on('exit', () => ((exited = true), resolve())));
  // Kill as soon as some (not all) results are on disk.
  while (!exited) {
    const done = (await lines(genFile)).length + (await lines(pplFile)).length;
    if (done >= 6) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(!exited, 'the child finished before it could be killed; make the fixture bigger');
  child.kill('SIGKILL');
  await exit;
  const genBefore = await lines(genFile);
  const pplBefore = await lines(pplFile);
  // Only whole lines count as finished (a torn last line is dropped on rerun).
  const finished = (ls: string[]) => ls.filter((l) => { try { JSON.parse(l); return true; } catch { return false; } });
  const genDone = finished(genBefore).length;
  const pplDone = finished(pplBefore).length;
  assert.ok(genDone + pplDone >= 5 && genDone + pplDone < totalWindows + totalGenerations, `finished before kill: ${genDone} + ${pplDone}`);

  const resumed = await runEvaluation({ ...fixture, outDir, quiet: true });
  assert.deepEqual(resumed.computed, { perplexity: totalWindows - pplDone, generations: totalGenerations - genDone });
  assert.deepEqual(resumed.perplexity, reference.perplexity);
  assert.deepEqual(resumed.generations, reference.generations);
  assert.deepEqual(resumed.perCheckpoint, reference.perCheckpoint);
  // What was finished before the kill is still there, unchanged, at the start of the files.
  assert.deepEqual((await lines(genFile)).slice(0, genDone), finished(genBefore));
  assert.equal((await lines(pplFile)).length, totalWindows);
});

test('a task that throws is retried once; failing twice fails the run naming checkpoint and example', async () => {
  const target = fixture.dev[3]!.id;
  const retried = await runEvaluation({ ...fixture, outDir: path.join(root, 'retry'), quiet: true, faultInjection: { exampleId: target, failAttempts: 1 } });
  assert.deepEqual(retried.generations, reference.generations);

  const outDir = path.join(root, 'fail');
  await assert.rejects(
    runEvaluation({ ...fixture, outDir, quiet: true, faultInjection: { exampleId: target, failAttempts: 2 } }),
    (err: Error) => {
      assert.match(err.message, /failed twice/);
      assert.match(err.message, /checkpoint epoch \d+ \([0-9a-f]{12}\)/);
      assert.match(err.message, new RegExp(`dev example ${target} sample \\d`));
      assert.match(err.message, /injected failure/);
      return true;
    },
  );
  // Nothing finished is lost: a clean rerun only computes what the failed run had not stored.
  const stored = (await lines(path.join(outDir, 'perplexity.jsonl'))).length + (await lines(path.join(outDir, 'generations.jsonl'))).length;
  const rerun = await runEvaluation({ ...fixture, outDir, quiet: true });
  assert.equal(rerun.computed.perplexity + rerun.computed.generations, totalWindows + totalGenerations - stored);
  assert.deepEqual(rerun.generations, reference.generations);
});

after(async () => {
  await fs.rm(root, { recursive: true, force: true });
});
