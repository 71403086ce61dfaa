import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BpeTokenizer, BYTE_TO_UNICODE, SPECIAL_TOKENS, TokenizerFormatError, pretokenize } from '../../src/data/tokenizer.ts';
import { mulberry32 } from '../../src/util/rng.ts';

const CORPUS = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.',
  "I'll say it's fine, you're right, we've done it, they'd agree and I'm sure.",
  'function add(a, b) {\n\treturn a + b;\n}\n\nconst x = add(1, 2); // 3\n',
  'Numbers: 12345 67890 3.14159 2023-11-24 and more numbers 42 42 42.',
  '日本語のテキストと中文文本。東京は日本の首都です。',
  'Emoji: 😀😀 👍🏽 👨‍👩‍👧 🇫🇷 and a heart ❤️ again 😀.',
  'Lists:\n- first item\n- second item\n- third item\n',
  'the the the there these those then than that this',
];

function corpus(repeat: number): string[] {
  const texts: string[] = [];
  for (let r = 0; r < repeat; r++) texts.push(...CORPUS);
  return texts;
}

const tok = BpeTokenizer.train(corpus(3), 420);

const ROUND_TRIP_CASES: Record<string, string> = {
  empty: '',
  ascii: 'Hello, world! This is plain ASCII text with punctuation: (a) [b] {c} <d> ~!@#$%^&*',
  emoji: '😀 👍🏽 👨‍👩‍👧 🇫🇷🇯🇵 ❤️ 🧑🏿‍🚀 — emoji with skin tones, ZWJ sequences and flags',
  cjk: '日本語のテキスト、中文文本，한국어 텍스트。全角スペース\u3000も。',
  code: 'def f(x):\n\tif x:\n\t\treturn [i ** 2 for i in range(x)]\r\n    # comment\n\n\n  \t \n}',
  whitespaceOnly: ' \t\n\r\n   \u00a0\u2003 ',
  longWord: 'a'.repeat(20_000),
  longFrequentWord: 'the'.repeat(7_000),
  longMixedWord: Array.from({ length: 5_000 }, (_, i) => 'xyzab'[i % 5] + 'ünï'[i % 3]).join(''),
  specialLiterals: 'text with <|eot|> and <|user|><|assistant|> inside',
  controlChars: '\u0000\u0001\u001f\u007f\u0085\u200b\ufeff',
  astral: '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 \u{10FFFF}',
};

test('pretokenize splits GPT-2 style and loses nothing', () => {
  assert.deepEqual(pretokenize("I'll go  now, ok?"), ['I', "'ll", ' go', ' ', ' now', ',', ' ok', '?']);
  // GPT-2's \s+(?!\S) leaves the last whitespace character before a word to a piece of its own.
  assert.deepEqual(pretokenize('abc123 x\n\ny'), ['abc', '123', ' x', '\n', '\n', 'y']);
  for (const text of Object.values(ROUND_TRIP_CASES)) assert.equal(pretokenize(text).join(''), text);
});

test('bytes_to_unicode matches GPT-2 (printable bytes themselves, space is Ġ, newline is Ċ)', () => {
  assert.equal(BYTE_TO_UNICODE[0x41], 'A');
  assert.equal(BYTE_TO_UNICODE[0x20], 'Ġ');
  assert.equal(BYTE_TO_UNICODE[0x0a], 'Ċ');
  assert.equal(BYTE_TO_UNICODE[0x00], 'Ā');
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
});

test('hand-worked tiny example: first merges and tie-breaking', () => {
  // "aaabdaaabac" is one piece. Pair counts: aa 4, ab 2, others 1 -> merge (a, a).
  // Word becomes [aa a b d aa a b a c]: (aa, a) 2 and (a, b) 2 tie; "a" < "aa" -> merge (a, b).
  // Word becomes [aa ab d aa ab a c]: (aa, ab) 2 -> merge. Then every pair occurs once: stop.
  const small = BpeTokenizer.train(['aaabdaaabac'], 300);
  assert.deepEqual(small.mergeList(), [
    ['a', 'a'],
    ['a', 'b'],
    ['aa', 'ab'],
  ]);
  assert.equal(small.vocabSize, 5 + 256 + 3, 'stops early when no pair occurs twice');
  const strings = (ids: number[]): string[] => ids.map((id) => small.tokenString(id));
  assert.deepEqual(strings(small.encode('aaabdaaabac')), ['aaab', 'd', 'aaab', 'a', 'c']);
  // Merge order matters: (a, a) outranks (a, b), so "aab" is [aa, b], not [a, ab].
  assert.deepEqual(strings(small.encode('aab')), ['aa', 'b']);
  assert.deepEqual(strings(small.encode('abab')), ['ab', 'ab']);
  // Merges never cross pieces: " aa" is a different piece from "aa" (leading space byte Ġ).
  assert.deepEqual(strings(small.encode('b aa')), ['b', 'Ġ', 'aa']);
});

test('round trip decode(encode(s)) === s on ASCII, emoji, CJK, code, long words, empty', () => {
  for (const [name, text] of Object.entries(ROUND_TRIP_CASES)) {
    const ids = tok.encode(text);
    assert.equal(tok.decode(ids), text, name);
    if (text === '') assert.deepEqual(ids, []);
  }
  assert.ok(tok.encode(ROUND_TRIP_CASES.longFrequentWord).length <= 7_000, 'a long word is still merged (th, he, the...)');
});

test('round trip on random strings of random code points (seeded)', () => {
  const rand = mulberry32(1234);
  const ranges: [number, number][] = [
    [0x20, 0x7e],
    [0x09, 0x0d],
    [0xa0, 0x2ff],
    [0x4e00, 0x4fff],
    [0x1f300, 0x1f6ff],
    [0xd7ff, 0xd7ff],
    [0xe000, 0xe0ff],
  ];
  for (let trial = 0; trial < 200; trial++) {
    let s = '';
    const length = Math.floor(rand() * 60);
    for (let i = 0; i < length; i++) {
      const [lo, hi] = ranges[Math.floor(rand() * ranges.length)];
      s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
    }
    assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s));
  }
});

test('lone surrogates do not crash: they become U+FFFD', () => {
  const text = 'a\ud800b\udc00c \udbff';
  const ids = tok.encode(text);
  assert.equal(tok.decode(ids), 'a\ufffdb\ufffdc \ufffd');
  // Decoding a cut multi-byte character does not throw either.
  const snowman = tok.encode('☃');
  const oneByte = snowman.length > 1 ? snowman.slice(0, 1) : [5 + 0xe2];
  assert.equal(typeof tok.decode(oneByte), 'string');
});

test('special tokens are never produced from text; decode writes them literally unless skipped', () => {
  const text = '<|pad|><|eot|><|system|><|user|><|assistant|> and <|eot|>';
  const ids = tok.encode(text);
  assert.ok(ids.every((id) => id >= SPECIAL_TOKENS.length), 'no special ids from ordinary text');
  assert.equal(tok.decode(ids), text);
  assert.deepEqual(tok.special, { pad: 0, eot: 1, system: 2, user: 3, assistant: 4 });
  SPECIAL_TOKENS.forEach((s, id) => assert.equal(tok.tokenString(id), s));
  const hi = tok.encode('hi');
  const withSpecial = [tok.special.user, ...hi, tok.special.eot];
  assert.equal(tok.decode(withSpecial), '<|user|>hi<|eot|>');
  assert.equal(tok.decode(withSpecial, { skipSpecial: true }), 'hi');
  assert.throws(() => tok.decode([tok.vocabSize]), RangeError);
  assert.throws(() => tok.decode([-1]), RangeError);
});

test('training is deterministic and independent of text order', () => {
  const a = BpeTokenizer.train(corpus(2), 380);
  const b = BpeTokenizer.train(corpus(2), 380);
  const shuffled = corpus(2).reverse();
  const c = BpeTokenizer.train(shuffled, 380);
  assert.deepEqual(a.toJSON(), b.toJSON());
  assert.deepEqual(a.mergeList(), c.mergeList());
});

test('vocabulary size is respected', () => {
  assert.equal(tok.vocabSize, 420);
  assert.equal(BpeTokenizer.train(corpus(3), 300).vocabSize, 300);
  assert.equal(BpeTokenizer.train(corpus(1), 261).vocabSize, 261, 'specials + bytes only');
  assert.throws(() => BpeTokenizer.train(corpus(1), 260), RangeError);
  const json = tok.toJSON() as { model: { vocab: Record<string, number> } };
  assert.equal(Object.keys(json.model.vocab).length, 420, 'vocab tokens are distinct');
  assert.ok(Math.max(...tok.encode(CORPUS.join(' '))) < 420);
});

test('incremental training matches a naive full-recount reference', () => {
  const texts = corpus(2);
  const vocabSize = 360;
  const fast = BpeTokenizer.train(texts, vocabSize);
  assert.deepEqual(fast.mergeList(), naiveTrain(texts, vocabSize));
});

test('heap-based encode matches the textbook lowest-rank-first loop', () => {
  const rand = mulberry32(99);
  const json = tok.toJSON() as { model: { merges: [string, string][] } };
  const ranks = new Map(json.model.merges.map(([l, r], i) => [`${l} ${r}`, i]));
  const alphabet = 'the fox dog aaa 123 日本 😀\n\t';
  const chars = [...alphabet];
  for (let trial = 0; trial < 100; trial++) {
    let s = '';
    const length = 1 + Math.floor(rand() * 80);
    for (let i = 0; i < length; i++) s += chars[Math.floor(rand() * chars.length)];
    const expected = pretokenize(s).flatMap((piece) => naiveEncodePiece(piece, ranks));
    assert.deepEqual(tok.encode(s).map((id) => tok.tokenString(id)), expected, JSON.stringify(s));
  }
});

test('tokenizer.json save/load round trip gives identical encodings', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-tok-'));
  try {
    const file = path.join(dir, 'tokenizer.json');
    await fs.writeFile(file, JSON.stringify(tok.toJSON()));
    const loaded = BpeTokenizer.fromJSON(JSON.parse(await fs.readFile(file, 'utf8')), file);
    assert.equal(loaded.vocabSize, tok.vocabSize);
    assert.deepEqual(loaded.toJSON(), tok.toJSON());
    for (const text of [...CORPUS, ...Object.values(ROUND_TRIP_CASES)]) {
      assert.deepEqual(loaded.encode(text), tok.encode(text));
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('tokenizer.json has the Hugging Face layout; legacy "a b" merges load too', () => {
  const json = tok.toJSON() as Record<string, any>;
  assert.equal(json.version, '1.0');
  assert.equal(json.normalizer, null);
  assert.equal(json.post_processor, null);
  assert.deepEqual(json.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
  assert.equal(json.decoder.type, 'ByteLevel');
  assert.deepEqual(json.added_tokens[1], { id: 1, content: '<|eot|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  assert.equal(json.model.type, 'BPE');
  assert.equal(json.model.unk_token, null);
  assert.equal(json.model.byte_fallback, false);
  assert.equal(json.model.vocab['<|assistant|>'], 4);
  assert.equal(json.model.vocab['Ġ'], 5 + 0x20);
  assert.ok(Array.isArray(json.model.merges[0]) && json.model.merges[0].length === 2);

  const legacy = structuredClone(json);
  legacy.model.merges = json.model.merges.map(([l, r]: [string, string]) => `${l} ${r}`);
  const loaded = BpeTokenizer.fromJSON(legacy);
  assert.deepEqual(loaded.encode(CORPUS.join('\n')), tok.encode(CORPUS.join('\n')));
});

test('malformed tokenizer.json files give errors that name the file and field', () => {
  const good = tok.toJSON() as Record<string, any>;
  const broken = (edit: (j: Record<string, any>) => void): Record<string, any> => {
    const j = structuredClone(good);
    edit(j);
    return j;
  };
  const cases: [unknown, RegExp][] = [
    [null, /my\.json: \(root\)/],
    [broken((j) => delete j.model), /my\.json: model: expected an object/],
    [broken((j) => (j.model.type = 'WordPiece')), /model\.type/],
    [broken((j) => (j.model.vocab['Ġ'] = 100000)), /model\.vocab\["Ġ"\].*integer id/],
    [broken((j) => (j.model.vocab['Ġ'] = 6)), /id 6 is also used/],
    [broken((j) => j.model.merges.push(['nope', 'x'])), /model\.merges\[\d+\]: token "nope"/],
    [broken((j) => j.model.merges.push('a b c')), /model\.merges\[\d+\]: expected two tokens/],
    [broken((j) => j.model.merges.push(7)), /model\.merges\[\d+\]: expected "a b"/],
    [broken((j) => (j.added_tokens[0].content = '<|bos|>')), /added_tokens\[0\]/],
  ];
  for (const [json, pattern] of cases) {
    assert.throws(() => BpeTokenizer.fromJSON(json, 'my.json'), (err: Error) => err instanceof TokenizerFormatError && pattern.test(err.message), String(pattern));
  }
  // Swapping two special ids is caught.
  const swapped = broken((j) => {
    j.model.vocab['<|pad|>'] = 1;
    j.model.vocab['<|eot|>'] = 0;
  });
  assert.throws(() => BpeTokenizer.fromJSON(swapped, 'my.json'), /expected special token <\|pad\|> at id 0/);
});

// --- references: deliberately simple, slow implementations to check the fast ones against ---

/** Full recount every step, same tie-break (count desc, then left token, then right token). */
function naiveTrain(texts: string[], vocabSize: number): [string, string][] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const p of pretokenize(t)) counts.set(p, (counts.get(p) ?? 0) + 1);
  const words = [...counts].map(([p, n]) => ({ syms: [...new TextEncoder().encode(p)].map((b) => BYTE_TO_UNICODE[b]), n }));
  const vocab = new Set<string>(BYTE_TO_UNICODE);
  const merges: [string, string][] = [];
  while (5 + vocab.size < vocabSize) {
    const pairs = new Map<string, { l: string; r: string; n: number }>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const key = `${w.syms[i]}\u0000${w.syms[i + 1]}`;
        const e = pairs.get(key) ?? { l: w.syms[i], r: w.syms[i + 1], n: 0 };
        e.n += w.n;
        pairs.set(key, e);
      }
    }
    let best: { l: string; r: string; n: number } | undefined;
    for (const e of pairs.values()) {
      if (!best || e.n > best.n || (e.n === best.n && (e.l < best.l || (e.l === best.l && e.r < best.r)))) best = e;
    }
    if (!best || best.n < 2) break;
    merges.push([best.l, best.r]);
    vocab.add(best.l + best.r);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === best.l && w.syms[i + 1] === best.r) {
          out.push(best.l + best.r);
          i++;
        } else out.push(w.syms[i]);
      }
      w.syms = out;
    }
  }
  return merges;
}

function naiveEncodePiece(piece: string, ranks: Map<string, number>): string[] {
  let syms = [...new TextEncoder().encode(piece)].map((b) => BYTE_TO_UNICODE[b]);
  for (;;) {
    let bestRank = Infinity;
    for (let i = 0; i + 1 < syms.length; i++) bestRank = Math.min(bestRank, ranks.get(`${syms[i]} ${syms[i + 1]}`) ?? Infinity);
    if (bestRank === Infinity) return syms;
    const out: string[] = [];
    for (let i = 0; i < syms.length; i++) {
      if (i + 1 < syms.length && ranks.get(`${syms[i]} ${syms[i + 1]}`) === bestRank) {
        out.push(syms[i] + syms[i + 1]);
        i++;
      } else out.push(syms[i]);
    }
    syms = out;
  }
}

test('a file where two merges spell the same token (a+bc, ab+c) loads and encodes', () => {
  const json = BpeTokenizer.train([], 261).toJSON() as Record<string, any>;
  json.model.vocab.ab = 261;
  json.model.vocab.bc = 262;
  json.model.vocab.abc = 263;
  json.model.merges = [['b', 'c'], ['a', 'b'], ['ab', 'c'], ['a', 'bc']];
  const handmade = BpeTokenizer.fromJSON(json);
  assert.equal(handmade.vocabSize, 264);
  assert.deepEqual(handmade.encode('abc'), [263], 'b+c first, then a+bc');
  assert.deepEqual(handmade.encode('abd'), [261, 5 + 0x64]);
  assert.equal(handmade.decode(handmade.encode('xabcabc')), 'xabcabc');
});
