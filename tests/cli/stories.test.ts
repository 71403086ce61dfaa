// stories260K (Karpathy's TinyStories llama, a real GGUF file no one here wrote; ../shared/models,
// skipped when absent) through the command line: `generate` reads the GGUF file's own tokenizer
// (its metadata, nothing beside the file), encodes a plain prompt as llama.cpp does (BOS + text)
// and continues it greedily into TinyStories text; `--chat` uses the plain template, the file
// having no chat template; `perplexity` scores children's-story text (written here) far better
// than real Stack Exchange posts (../shared/data/stackexchange/coffee, skipped when absent).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { sharedSkip, STORIES_GGUF } from '../helpers/shared-models.ts';
import { tempDir } from '../eval/helpers.ts';
import { readRecords } from '../../src/data/readers.ts';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'bin/lima-harness.mjs');
const COFFEE = path.resolve(root, '..', 'shared', 'data', 'stackexchange', 'coffee', 'Posts.xml');
const dir = await tempDir('stories-cli');
after(() => fs.rm(dir, { recursive: true, force: true }));

function run(args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `lima-harness ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

// Written for this test in TinyStories' register (simple words, short sentences, a small moral).
const STORY = `Once upon a time, there was a little girl named Mia. She had a red ball that she loved very much. Every day, she played with her ball in the park near her house.

One day, Mia saw a small dog in the park. The dog was sad because he had no friends. Mia said, "Do you want to play with my ball?" The dog wagged his tail and barked. They played all day and had lots of fun.

When the sun went down, Mia's mom called her home. Mia hugged the dog and said, "See you tomorrow!" The dog was happy. He had a new friend. Mia learned that sharing makes everyone happy.

Tom was a big boy who liked to help his dad. One morning, his dad said, "Tom, can you help me plant a tree?" Tom was very excited. They dug a hole in the garden and put the little tree in it. Tom gave the tree some water. "Grow big and strong!" he said. The tree grew and grew, and Tom was proud.`;

test('stories260K GGUF: `generate` continues a plain prompt (BOS + text) greedily into TinyStories text; --chat uses the plain template', { skip: sharedSkip }, () => {
  const out = JSON.parse(run(['generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--max-new-tokens', '64', '--json'])) as {
    continuation: string; ids: number[]; newTokens: number; promptTokens: number; endedWithEot: boolean;
  };
  // BOS + ▁Once ▁upon ▁a ▁time: llama.cpp's tokens (tests/model/llama-stories.test.ts compares every id).
  assert.equal(out.promptTokens, 5);
  assert.equal(out.newTokens, 64);
  assert.equal(out.endedWithEot, false);
  // llama2.c's reference output begins with the girl named Lily and her ball (../shared/models/README.md).
  assert.match(out.continuation, /^, there was a little girl named Lily\. She loved to play outside/);
  assert.match(out.continuation, /ball/);
  const text = run(['generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--max-new-tokens', '64']);
  assert.equal(text.trimEnd(), out.continuation.trimEnd(), 'plain output is the same continuation');
  const chat = JSON.parse(run(['generate', '--model', STORIES_GGUF, '--prompt', 'Tell me a story.', '--max-new-tokens', '16', '--chat', '--json'])) as { chatFormat: string; promptTokens: number };
  assert.match(chat.chatFormat, /^plain template/);
  assert.ok(chat.promptTokens > 10, `the plain template's "### Instruction:" wrapping: ${chat.promptTokens} prompt tokens`);
  console.log(`# stories260K generate: ${JSON.stringify(out.continuation.slice(0, 100))}...`);
});

test('stories260K GGUF: `perplexity` of children\'s-story text is far lower than of Stack Exchange posts', { skip: sharedSkip || (!existsSync(COFFEE) && `${COFFEE} is absent (real data beside the project)`) }, async () => {
  // The first answered coffee.stackexchange.com questions with their answers (about as long as the story).
  const { records } = await readRecords(COFFEE);
  let se = '';
  for (const r of records) {
    if (se.length >= STORY.length) break;
    se += `${r.turns.map((t) => t.content).join('\n\n')}\n\n`;
  }
  se = se.trim();
  const storyFile = path.join(dir, 'story.txt');
  const seFile = path.join(dir, 'stackexchange.txt');
  await fs.writeFile(storyFile, STORY);
  await fs.writeFile(seFile, se);
  type Result = { tokens: number; nll: number; perplexity: number; bitsPerByte: number };
  const story = JSON.parse(run(['perplexity', '--model', STORIES_GGUF, '--text', storyFile])) as Result;
  const posts = JSON.parse(run(['perplexity', '--model', STORIES_GGUF, '--text', seFile])) as Result;
  for (const r of [story, posts]) assert.ok(r.tokens > 200 && Number.isFinite(r.perplexity), JSON.stringify(r));
  const ratio = posts.perplexity / story.perplexity;
  console.log(`# stories260K perplexity: children's story ${story.perplexity.toFixed(2)} (${story.tokens} tokens, ${story.bitsPerByte.toFixed(3)} bits/byte), Stack Exchange ${posts.perplexity.toFixed(2)} (${posts.tokens} tokens, ${posts.bitsPerByte.toFixed(3)} bits/byte), ratio ${ratio.toFixed(1)}`);
  assert.ok(story.perplexity < 10, `story perplexity ${story.perplexity}`);
  assert.ok(ratio > 5, `Stack Exchange / story perplexity ratio ${ratio}`);
  assert.ok(posts.bitsPerByte > 2 * story.bitsPerByte, `bits per byte: ${posts.bitsPerByte} vs ${story.bitsPerByte}`);
});
