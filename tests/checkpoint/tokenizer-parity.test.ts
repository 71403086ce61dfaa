// "HF format" means other tools read our tokenizer.json the same way: Hugging Face's own JS
// tokenizer library (@huggingface/tokenizers) loads the file our BpeTokenizer writes and gives
// the same ids, and decodes them to the same text, on varied text (unicode scripts, combining
// marks, emoji sequences, code, whitespace runs, CRLF, unusual spaces, digits, contractions).
// The one documented difference: HF splits special tokens written literally in the text
// ("<|eot|>" -> id 1) where ours encodes them as plain bytes. The exported chat_template,
// rendered by @huggingface/jinja and tokenized by HF, gives encodeChat's and encodePrompt's ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { BpeTokenizer, SPECIAL_TOKENS } from '../../src/data/tokenizer.ts';
import { CHAT_TEMPLATE, encodeChat, encodePrompt } from '../../src/data/chat-format.ts';
import { hfTokenizerConfig } from '../../src/cli/export-command.ts';
import type { Turn } from '../../src/data/types.ts';

const varied = [
  'The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!',
  "It's, they're, we'll, I'd, you've, I'm -- DON'T, 'quoted' and 'S",
  'Numbers: 3.14159, 1,000,000 and 42nd; dates 2024-01-31; ½ ² ٣ ૪ Ⅻ',
  'Ünïcödé: naïve café résumé; Ελληνικά; русский текст; עברית; العربية; हिन्दी; ไทย',
  '日本語のテキストと中文文本，한국어 텍스트。',
  'Combining: e\u0301 a\u0308 n\u0303; Hangul jamo \u1100\u1161; zero\u200bwidth\u200djoiner',
  'Emoji: 🙂 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 ❤️ and text🙂glued',
  'def f(x):\n    return x ** 2  # square\n\n\tif x != 0 { y += 1; }\n',
  'const re = /a+b*/g; obj?.prop ?? {}; a=>b; `template ${x}`; <div class="c">&amp;</div>',
  'lines\r\nwith CRLF\r\n\r\nand a final CR\r',
  'spaces:  two,   three,      six; tabs\t\t\there; trailing   ',
  '   leading spaces and a newline run\n\n\n\n',
  'unusual spaces: a\u00a0b c\u2003d e\u3000f g\u2028h i\u202fj\u205fk',
  'rare controls: a\u0085b c\ufeffd e\u000bf g\u000cf',
  '',
  ' ',
  '\n',
  'a',
  'https://example.com/path?query=1&x=%20y#frag user@example.org',
  'mixed123abc 123 abc123 ...!!! ??? --- ___ +++',
];

const trainingText = [...varied, ...varied.map((t) => t.toLowerCase()), 'the the the cats and dogs answer questions with care'];
const ours = BpeTokenizer.train(trainingText.flatMap((t) => [t, t]), 700);
const hf = new Tokenizer(ours.toJSON() as never, hfTokenizerConfig(ours, 64) as never);

test('the library loads our tokenizer.json; ids and decoded text agree on varied text', () => {
  assert.ok(ours.vocabSize > 500, `a tokenizer with merges (${ours.vocabSize} tokens)`);
  // Unseen text too: the training set's texts shuffled into new combinations and new words.
  const unseen = ['Quokkas éclair 🦘 ʻŌlelo 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{1F9D1}\u{200D}\u{1F4BB}', varied.slice(3, 9).join(' \r\n '), 'x'.repeat(300) + ' ' + '🙂'.repeat(20)];
  let compared = 0;
  for (const text of [...varied, ...unseen]) {
    const a = ours.encode(text);
    const b = hf.encode(text).ids;
    assert.deepEqual(b, a, `ids differ on ${JSON.stringify(text)}`);
    if (a.length > 0) assert.equal(hf.decode(a), ours.decode(a), `decode differs on ${JSON.stringify(text)}`); // the library refuses to decode []
    assert.equal(ours.decode(a), text);
    compared += a.length;
  }
  assert.ok(compared > 500, `${compared} tokens compared`);
});

test('the documented difference: special tokens spelled literally are split out by HF, bytes for us', () => {
  for (const special of SPECIAL_TOKENS) {
    const text = `before ${special} after`;
    const a = ours.encode(text);
    const b = hf.encode(text).ids;
    assert.ok(!a.some((id) => ours.isSpecial(id)), 'ours never produces a special id from text');
    assert.deepEqual(b, [...ours.encode('before '), SPECIAL_TOKENS.indexOf(special), ...ours.encode(' after')]);
  }
});

test('the exported chat_template rendered by @huggingface/jinja and tokenized by HF gives our chat encoding', () => {
  const conversations: Turn[][] = [
    [{ role: 'user', content: 'Why is the sky blue?' }, { role: 'assistant', content: 'Light scatters in air.\n\nShort waves more.' }],
    [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Write a poem 🙂 about cats' },
      { role: 'assistant', content: '  Cats sleep,\r\n  cats leap.' },
      { role: 'user', content: 'another?' },
    ],
  ];
  const template = new Template(CHAT_TEMPLATE);
  for (const turns of conversations) {
    const messages = turns.map((t) => ({ role: t.role, content: t.content }));
    const full = template.render({ messages, add_generation_prompt: false });
    assert.deepEqual(hf.encode(full).ids, encodeChat(ours, turns).ids);
    if (turns[turns.length - 1]!.role === 'user') {
      const prompt = template.render({ messages, add_generation_prompt: true });
      assert.ok(prompt.endsWith('<|assistant|>'));
      assert.deepEqual(hf.encode(prompt).ids, encodePrompt(ours, turns));
    }
  }
  assert.throws(() => template.render({ messages: [{ role: 'tool', content: 'x' }] }), /a role must be system, user or assistant, got tool/);
});

// The Rust `tokenizers` library itself (what transformers uses) and Python's jinja2 (what
// transformers renders chat templates with), when LIMA_HF_PYTHON names a Python with
// `tokenizers` and `jinja2` (see safetensors.test.ts). Checked with tokenizers 0.23.2, jinja2 3.1.6.
const referencePython = process.env.LIMA_HF_PYTHON;
test('the Rust tokenizers library gives our ids; jinja2 renders the chat template as @huggingface/jinja does', { skip: referencePython ? false : 'LIMA_HF_PYTHON is not set' }, async () => {
  const { execFileSync } = await import('node:child_process');
  const { promises: fs } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-tok-parity-'));
  try {
    const texts = [...varied, 'before <|eot|> after'];
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Write a poem 🙂\r\nabout cats' }];
    await fs.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(ours.toJSON()));
    await fs.writeFile(path.join(dir, 'input.json'), JSON.stringify({ texts, messages, template: CHAT_TEMPLATE }));
    const script = `
import sys, json
from tokenizers import Tokenizer
from jinja2.sandbox import ImmutableSandboxedEnvironment
tok = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
inp = json.load(open(sys.argv[1] + "/input.json", encoding="utf-8"))
def raise_exception(message):
    raise ValueError(message)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
rendered = env.from_string(inp["template"]).render(messages=inp["messages"], add_generation_prompt=True)
print(json.dumps({"ids": [tok.encode(t).ids for t in inp["texts"]], "rendered": rendered, "prompt_ids": tok.encode(rendered).ids}))
`;
    const result = JSON.parse(execFileSync(referencePython!, ['-c', script, dir]).toString()) as { ids: number[][]; rendered: string; prompt_ids: number[] };
    varied.forEach((text, i) => assert.deepEqual(result.ids[i], ours.encode(text), `Rust tokenizers differs on ${JSON.stringify(text)}`));
    // The documented difference, in the Rust library too.
    assert.deepEqual(result.ids[varied.length], [...ours.encode('before '), 1, ...ours.encode(' after')]);
    assert.equal(result.rendered, new Template(CHAT_TEMPLATE).render({ messages, add_generation_prompt: true }));
    assert.deepEqual(result.prompt_ids, encodePrompt(ours, messages as Turn[]));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
