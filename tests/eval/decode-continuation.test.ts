// A continuation's text as it reads after its prompt (issue 13): a SentencePiece decoder drops the
// leading space of a text's first piece, so "once" -> "▁upon ▁the ..." decoded alone read "upon
// the"; decodeContinuation decodes prompt + continuation and keeps what follows the decoded
// prompt, as transformers' TextStreamer does. Our byte-level tokenizer's text is unchanged.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadAnyCheckpoint } from '../../src/checkpoint/index.ts';
import { checkpointTokenizer } from '../../src/eval/checkpoint-tokenizer.ts';
import { decodeContinuation, nativeEvalTokenizer } from '../../src/eval/eval-tokenizer.ts';
import { mulberry32 } from '../../src/util/rng.ts';
import { makeTokenizer, tempDir } from './helpers.ts';
import { tinyLlamaGguf } from '../helpers/gguf-llama.ts';

const root = await tempDir('decode-continuation');
after(() => fs.rm(root, { recursive: true, force: true }));
const cli = path.resolve(import.meta.dirname, '../../bin/lima-harness.mjs');

test('SentencePiece (GGUF llama vocabulary): the continuation keeps its leading space; the generate command prints it so', async () => {
  const file = path.join(root, 'step-1.gguf');
  await fs.writeFile(file, tinyLlamaGguf(3));
  const tok = await checkpointTokenizer(await loadAnyCheckpoint(file), file);
  const prompt = tok.encodeText('once');
  const whole = tok.encodeText('once upon the time');
  assert.deepEqual(whole.slice(0, prompt.length), prompt, 'the prompt tokens start the whole');
  const continuation = whole.slice(prompt.length);
  assert.equal(tok.decode(continuation, { skipSpecial: true }), 'upon the time', 'decoded alone: the leading space is lost');
  assert.equal(decodeContinuation(tok, prompt, continuation, { skipSpecial: true }), ' upon the time');
  assert.equal(decodeContinuation(tok, prompt, [], { skipSpecial: true }), '');
  // Not a prefix (a stand-in decoder that rewrites the prompt): the continuation alone.
  const odd = { decode: (ids: readonly number[]) => (ids.length === 1 ? 'P' : ids[0] === 1 ? 'Q, whole' : ids.join(',')) };
  assert.equal(decodeContinuation(odd, [1], [2, 3]), '2,3');

  // The command prints exactly the text after the decoded prompt (a random model: whatever it drew).
  const r = spawnSync(process.execPath, [cli, 'generate', '--model', file, '--prompt', 'once', '--max-new-tokens', '6', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { continuation: string; ids: number[] };
  const decodedPrompt = tok.decode(prompt, { skipSpecial: true });
  const decodedWhole = tok.decode([...prompt, ...out.ids], { skipSpecial: true });
  assert.ok(decodedWhole.startsWith(decodedPrompt));
  assert.equal(out.continuation, decodedWhole.slice(decodedPrompt.length));
});

test('our byte-level tokenizer: decodeContinuation equals decoding the new ids alone (dev generations and the CI baseline unchanged)', () => {
  const bpe = makeTokenizer();
  const tok = nativeEvalTokenizer(bpe, 'k');
  const rand = mulberry32(11);
  const prompts = [tok.encodePrompt([{ role: 'user', content: 'What is a cat?' }]), tok.encodeText('héllo wörld'), tok.encodeText('plain')];
  for (const prompt of prompts) {
    for (let trial = 0; trial < 200; trial++) {
      // Any ids at all, special ones and bytes that cut characters included.
      const ids = Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * bpe.vocabSize));
      for (const skipSpecial of [true, false]) {
        assert.equal(decodeContinuation(tok, prompt, ids, { skipSpecial }), tok.decode(ids, { skipSpecial }), `prompt ${prompt.length} ids ${ids}`);
      }
    }
  }
});
