import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildWordnetDataset, parseSynsetLine } from '../../src/data/builtin-wordnet.ts';
import type { ChatRecord } from '../../src/data/types.ts';

test('parseSynsetLine: words, gloss definition and examples; licence header skipped', () => {
  const s = parseSynsetLine('00021939 03 n 02 artifact 0 artefact 0 001 @ 00002684 n 0000 | a man-made object taken as a whole; "the bowl is an artifact"  ', 'n');
  assert.deepEqual(s, { key: 'n:00021939', pos: 'noun', words: ['artifact', 'artefact'], definition: 'a man-made object taken as a whole', examples: ['the bowl is an artifact'], related: ['n:00002684'] });
  assert.equal(parseSynsetLine('  1 This software and database is being provided', 'n'), null);
});

const counts = { train: 300, heldout: 500, dev: 30 };

test('wordnet dataset: sizes, disjoint synsets/prompts across sets, deterministic in the seed', async () => {
  const a = await buildWordnetDataset(11, counts, 200);
  assert.equal(a.train.length, 300);
  assert.equal(a.heldout.length, 500);
  assert.equal(a.dev.length, 30);
  assert.equal(a.pretrain.length, 200);
  // Every record asks about its own headword: the prompt identifies the synset; no prompt repeats anywhere.
  const prompts = [...a.train, ...a.heldout, ...a.dev].map((r) => r.turns[0]!.content);
  assert.equal(new Set(prompts).size, prompts.length);
  // Definitions (synsets) of dev and held-out never appear in train responses' "Meaning" lines.
  const meanings = (records: ChatRecord[]) => new Set(records.map((r) => /- Meaning: (.*)/.exec(r.turns[1]!.content)?.[1]).filter(Boolean));
  const trainMeanings = meanings(a.train);
  for (const m of meanings(a.dev)) assert.ok(!trainMeanings.has(m), `dev meaning also in train: ${m}`);
  // Ids end with the synset key ("...-n:00021939"): no synset is in two sets (or twice in one).
  const synsetKeys = [...a.train, ...a.heldout, ...a.dev].map((r) => /-([nvar]:\d{8})$/.exec(r.id)![1]);
  assert.equal(new Set(synsetKeys).size, synsetKeys.length);
  const b = await buildWordnetDataset(11, counts, 200);
  assert.deepEqual(b, a);
  const c = await buildWordnetDataset(12, counts, 200);
  assert.notDeepEqual(c.train.map((r) => r.turns[0]!.content), a.train.map((r) => r.turns[0]!.content));
});

test('wordnet dataset: train and dev share one curated style; held-out is terse and different', async () => {
  const { train, dev, heldout, pretrain } = await buildWordnetDataset(3, counts, 100);
  const curated = /^.+\n\n- Part of speech: (noun|verb|adjective|adverb)\n- Meaning: .+\n- Synonyms: .+(\n- .+)*\n\nIn short, .+\.$/;
  for (const r of [...train, ...dev]) {
    assert.equal(r.turns.length, 2);
    assert.match(r.turns[1]!.content, curated);
  }
  const words = train.map((r) => r.turns[1]!.content.split(/\s+/).length).sort((x, y) => x - y);
  const median = words[Math.floor(words.length / 2)]!;
  assert.ok(median >= 30 && median <= 80, `median curated response ${median} words`);
  // Several prompt templates are used.
  const templates = new Set(train.map((r) => r.turns[0]!.content.replace(/'[^']*'/g, "'X'").replace(/".*"/, '"S"')));
  assert.ok(templates.size >= 5, `only ${templates.size} templates`);
  for (const r of heldout) {
    assert.doesNotMatch(r.turns[1]!.content, /In short,|- Part of speech/);
    assert.ok(r.turns[1]!.content.split(/\s+/).length < 60);
  }
  assert.ok(pretrain.every((t) => !t.includes('\n') && /\((noun|verb|adjective|adverb)\): /.test(t)));
});
