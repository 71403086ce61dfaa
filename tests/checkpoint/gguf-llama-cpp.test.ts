// The GGUF-derived tokenizer and stories260K against llama.cpp itself (node-llama-cpp 3.21.1, its
// prebuilt CPU binary; tests/helpers/llama-cpp-reference.ts). Skips without ../shared/models.
//
// Tokenizer parity: our tokenizer.json (gguf-tokenizer.ts) through @huggingface/tokenizers with
// add_special_tokens false gives exactly llama.cpp's ids for llama_tokenize(text, add_special =
// false, parse_special = false) (node-llama-cpp model.tokenize(text)). Documented differences,
// not exercised here: encode(text) with special tokens on adds BOS (as llama.cpp does when it
// tokenizes with add_special = true); text spelling a control token literally ("<s>") is split
// into that token by HF and kept as plain text by llama.cpp without parse_special.
// Checked on the varied strings below and 300 seeded random strings.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '@huggingface/tokenizers';
import { loadAnyCheckpoint } from '../../src/checkpoint/index.ts';
import { openLlamaCpp, type LlamaCppReference } from '../helpers/llama-cpp-reference.ts';
import { sharedSkip, STORIES_GGUF } from '../helpers/shared-models.ts';

const varied = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'One day, Tom said: "Look! A big, red ball!" and they ran -- fast -- to get it; it was fun.',
  "It's, they're, we'll, I'd, you've; DON'T SHOUT! 'quoted' (parens) [brackets] {braces}?",
  'Numbers: 3.14159, 1,000,000 and 42nd; dates 2024-01-31; 007 and 1+2=3 100%',
  'Ünïcödé: naïve café résumé; Ελληνικά; русский текст; 日本語; 中文; 한국어',
  'Emoji force byte fallback: 🙂 👍🏽 👩‍👩‍👧‍👦 🇫🇷 ❤️ and text🙂glued',
  '  two leading spaces',
  'trailing spaces   ',
  ' one leading space',
  'lines\nwith\n\nnewlines\n',
  'tabs\tand\r\nCRLF\r\n',
  'spaces:  two,   three,      six',
  'a',
  ' ',
  '\n',
  'zzzzqqqxxx jjjj vvvv wwww',
  'the the the cats and dogs, happy happy joy',
  '~`@#$%^&*_+=|\\/<>',
];

let ref: LlamaCppReference | undefined;
async function reference(): Promise<LlamaCppReference> {
  ref ??= await openLlamaCpp(STORIES_GGUF, { contextSize: 512 });
  return ref;
}
after(async () => {
  await ref?.dispose();
});

test('GGUF tokenizer through @huggingface/tokenizers gives llama.cpp\'s ids on varied text', { skip: sharedSkip }, async () => {
  const ck = await loadAnyCheckpoint(STORIES_GGUF);
  const tok = new Tokenizer(ck.tokenizer as object, ck.manifest.extra?.tokenizerConfig as object);
  const llama = await reference();
  assert.equal(llama.bos, 1);
  for (const text of varied) {
    const ours = tok.encode(text, { add_special_tokens: false }).ids;
    assert.deepEqual(ours, llama.tokenize(text), `ids differ on ${JSON.stringify(text)}`);
    assert.deepEqual(tok.encode(text).ids, [1, ...ours], 'encode with special tokens adds BOS');
    // Decoding: HF strips the one prefix space llama.cpp's SentencePiece added; both give the text back.
    assert.equal(tok.decode(ours), text, `HF decode of ${JSON.stringify(text)}`);
  }
  // Seeded random strings over letters, spaces, punctuation, digits, newlines and multi-byte characters.
  let seed = 20261129;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed % n;
  };
  const alphabet = [...'etaoinshrdlucmfwypvbgkjqxz', ...'ETAOIN', ' ', ' ', ' ', ' ', '  ', '.', ',', '!', '?', "'", '"', '-', '\n', '\t', '0', '7', '42', 'é', 'ß', '日', 'я', '🙂', 'the', ' and', 'ing', 'Lily', ' was'];
  for (let k = 0; k < 300; k++) {
    const text = Array.from({ length: 1 + rand(40) }, () => alphabet[rand(alphabet.length)]).join('');
    assert.deepEqual(tok.encode(text, { add_special_tokens: false }).ids, llama.tokenize(text), `ids differ on ${JSON.stringify(text)}`);
  }
  // Empty text: no tokens in either.
  assert.deepEqual(tok.encode('', { add_special_tokens: false }).ids, llama.tokenize(''));
});

test('node-llama-cpp greedy continuation of a story opening is TinyStories text, with log-probs', { skip: sharedSkip }, async () => {
  const llama = await reference();
  const prompt = [llama.bos!, ...llama.tokenize('Once upon a time')];
  const t0 = performance.now();
  const out = await llama.greedy(prompt, 64, { distributions: true });
  const ms = performance.now() - t0;
  assert.equal(out.tokens.length, 64);
  assert.equal(out.logprobs.length, 64);
  const words = out.text.toLowerCase().match(/[a-z]+/g) ?? [];
  assert.ok(words.length >= 30, `a story has words: ${JSON.stringify(out.text)}`);
  const common = ['the', 'was', 'she', 'he', 'a', 'to', 'and', 'her', 'play', 'day', 'said', 'lily', 'one'];
  assert.ok(words.filter((w) => common.includes(w)).length >= 10, `TinyStories-like: ${JSON.stringify(out.text)}`);
  // Greedy: each chosen token is the argmax of its row, and its log-prob is that row's maximum.
  out.distributions.forEach((row, i) => {
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
    assert.equal(out.tokens[i], best, `step ${i}`);
    assert.ok(Math.abs(row[best]! - out.logprobs[i]!) < 1e-6);
    const total = row.reduce((a, l) => a + Math.exp(l), 0);
    assert.ok(Math.abs(total - 1) < 1e-4, `step ${i}: probabilities sum to ${total}`);
  });
  // Scoring the whole sequence in one batch gives the same log-probs at the generated positions,
  // up to float32 rounding between llama.cpp's batched and one-token kernels (measured 1.6e-6 with
  // the float32 KV cache the helper asks for; llama.cpp's default float16 cache gives up to 1.6e-3).
  const scored = await llama.score([...prompt, ...out.tokens]);
  const tail = scored.slice(prompt.length - 1);
  let worst = 0;
  tail.forEach((l, i) => {
    worst = Math.max(worst, Math.abs(l - out.logprobs[i]!));
    assert.ok(Math.abs(l - out.logprobs[i]!) < 1e-4, `position ${i}: score ${l} vs greedy ${out.logprobs[i]}`);
  });
  console.log(`# node-llama-cpp greedy 64 tokens in ${ms.toFixed(0)} ms; batched score vs incremental log-probs: max |diff| ${worst.toExponential(2)}; text ${JSON.stringify(out.text)}`);
});
