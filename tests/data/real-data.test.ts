// Real data beside the project (../shared/data); skipped when it is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readRecords } from '../../src/data/readers.ts';
import { prepareData, readJsonl, validateDataConfig } from '../../src/data/prepare.ts';
import type { ChatRecord } from '../../src/data/types.ts';
import { BpeTokenizer } from '../../src/data/tokenizer.ts';
import { encodeChat, trainingTexts } from '../../src/data/chat-format.ts';
import { fitHeldout, heldoutCoverage } from '../../src/eval/heldout.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'data');
const present = existsSync(SHARED);
const SKIP = `real data not found at ${SHARED}`;

const SE_EXPECTED: Record<string, number> = { beer: 429, coffee: 208, 'history.meta': 488, datascience: 199, 'stackoverflow-2008': 167, conlang: 48 };

test('real LIMA alpaca file: 1,029 records, 1,000 single-turn', async (t) => {
  if (!present) return t.skip(SKIP);
  const r = await readRecords(path.join(SHARED, 'lima', 'lima_train.alpaca.json'));
  t.diagnostic(`lima: ${r.records.length} records, ${r.pairs} single-turn`);
  assert.equal(r.format, 'alpaca');
  assert.equal(r.records.length, 1029);
  assert.equal(r.pairs, 1000);
});

test('real Stack Exchange dumps: pair counts within 5% of the known counts; skeptics 1,066', async (t) => {
  if (!present) return t.skip(SKIP);
  const started = Date.now();
  for (const [site, expected] of Object.entries(SE_EXPECTED)) {
    const r = await readRecords(path.join(SHARED, 'stackexchange', site, 'Posts.xml'));
    t.diagnostic(`${site}: ${r.pairs} pairs (expected about ${expected}); skipped ${JSON.stringify(r.skippedByReason)}`);
    assert.equal(r.format, 'se-xml');
    assert.ok(Math.abs(r.pairs - expected) <= expected * 0.05, `${site}: ${r.pairs} pairs, expected about ${expected}`);
    // The converted bodies: code fences balanced, no carriage return.
    for (const text of r.records.flatMap((rec) => rec.turns.map((x) => x.content))) {
      assert.ok(!text.includes('\r'), `${site}: carriage return in ${JSON.stringify(text.slice(0, 80))}`);
      assert.equal((text.match(/^[ >]*`{3,}$/gm) ?? []).length % 2, 0, `${site}: unbalanced code fence in ${JSON.stringify(text.slice(0, 80))}`);
    }
  }
  const skeptics = await readRecords(path.join(SHARED, 'stackexchange', 'skeptics', 'qa.jsonl'));
  t.diagnostic(`skeptics: ${skeptics.pairs} pairs`);
  assert.equal(skeptics.format, 'chat');
  assert.equal(skeptics.pairs, 1066);
  t.diagnostic(`read all Stack Exchange files in ${Date.now() - started} ms`);
});

test('real study data config (experiments/lima-se.json): 1000 / 2000 / 50 with LIMA overlaps removed', async (t) => {
  if (!present) return t.skip(SKIP);
  const experiment = JSON.parse(await fs.readFile(path.join(ROOT, 'experiments', 'lima-se.json'), 'utf8'));
  const config = validateDataConfig(experiment.data, 'experiments/lima-se.json: data');
  for (const list of [config.train, config.heldout, config.dev]) for (const s of list) s.path = path.resolve(ROOT, s.path);
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-'));
  const started = Date.now();
  const prepared = await prepareData(config, experiment.seed, out);
  t.diagnostic(`prepare of the real study: ${Date.now() - started} ms`);
  assert.deepEqual(prepared.counts, { train: 1000, heldout: 2000, dev: 50 });
  const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
  t.diagnostic(`held-out/dev candidates removed as duplicates of LIMA prompts: ${manifest.removedAsTrainDuplicates}`);
  assert.ok(manifest.removedAsTrainDuplicates >= 2);
  const heldAndDev = [...(await readJsonl<ChatRecord>(prepared.heldout)), ...(await readJsonl<ChatRecord>(prepared.dev))];
  const questions = heldAndDev.map((r) => r.turns[0]!.content.split('\n')[0]!.toLowerCase());
  // The known overlaps: skeptics' "Does hot water freeze faster than cold water?" and coffee's Robusta/Arabica question (LIMA kept its body).
  assert.ok(!questions.some((q) => q.startsWith('does hot water freeze faster than cold water')));
  assert.ok(!heldAndDev.some((r) => r.id === 'coffee:116'));

  // Held-out coverage at the study's settings (BPE on LIMA, window 192): every answer token is
  // scored; keeping each conversation's first 192 tokens (as before) scores none of many examples.
  const tok = BpeTokenizer.train(trainingTexts(await readJsonl<ChatRecord>(prepared.train)), experiment.tokenizer.vocabSize);
  const heldout = await readJsonl<ChatRecord>(prepared.heldout);
  const window = Math.min(experiment.eval.maxLength, experiment.model.context);
  const fitted = heldout.map((r) => fitHeldout(tok, r.turns, window, 'disjoint'));
  const coverage = heldoutCoverage(fitted);
  assert.equal(coverage.scoredTokens, coverage.answerTokens);
  assert.ok(fitted.every((f) => f.scoredTokens > 0));
  const unscoredBefore = heldout.filter((r) => encodeChat(tok, r.turns, window).lossMask.every((m) => m === 0)).length;
  t.diagnostic(`held-out: ${coverage.answerTokens} answer tokens in ${coverage.windows} windows, ${coverage.promptCut} prompts cut, ${coverage.multiWindow} multi-window; the first ${window} tokens alone scored nothing of ${unscoredBefore}`);
  assert.ok(unscoredBefore > 200, `${unscoredBefore} examples unscored by the old trimming`);
});
