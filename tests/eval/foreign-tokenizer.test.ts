// A checkpoint whose tokenizer lima-harness did not write: a byte-level BPE tokenizer.json built
// here by hand (a few merges, ChatML's added tokens) with a ChatML chat_template, read through
// @huggingface/tokenizers and @huggingface/jinja (src/eval/eval-tokenizer.ts). Checks: the loss
// mask covers exactly the final answer's tokens and its end-of-turn token, prompts end with the
// generation prompt, stop ids, a template whose conversation does not extend its prompt is a
// clear error, a Zephyr-style template given bos_token/eos_token, the plain-template fallback
// (named, BOS from the post-processor), a folder with no stop token, our own
// checkpoints unchanged (same ids and masks as encodeChat, same cache key), and the `perplexity`
// and `generate` commands and a pooled evaluation on an HF GPT-2 folder with that tokenizer.
// SentencePiece tokenizers (hand-built with a Prepend normalizer or a Metaspace pre-tokenizer
// under a Llama 2 template, and the real stories260K GGUF under the plain template): the scored
// ids are the whole rendered conversation's encoding after the prompt's ids (no dummy-prefix
// "▁" before the answer), a generation prompt ending in a space follows the documented fallback,
// and bytes are the scored text's (plain text: the text's UTF-8 length).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { BYTE_TO_UNICODE, BpeTokenizer } from '../../src/data/tokenizer.ts';
import { encodeChat, encodePrompt } from '../../src/data/chat-format.ts';
import type { Turn } from '../../src/data/types.ts';
import { loadAnyCheckpoint, loadCheckpoint, tokenizerHash, writeHfGpt2 } from '../../src/checkpoint/index.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { checkpointTokenizer } from '../../src/eval/checkpoint-tokenizer.ts';
import { foreignEvalTokenizer, groupChatFormats, NATIVE_FORMAT_DESCRIPTION, PLAIN_TEMPLATE } from '../../src/eval/eval-tokenizer.ts';
import { fitHeldout } from '../../src/eval/heldout.ts';
import { runEvaluation, defaultEvalConfig } from '../../src/eval/index.ts';
import { perplexityCommand } from '../../src/cli/perplexity-command.ts';
import { generateCommand } from '../../src/cli/generate-command.ts';
import { exportCommand } from '../../src/cli/export-command.ts';
import { randomWeights, tempDir, writeCheckpoints, makeRecords } from './helpers.ts';
import { tinyLlamaGguf, TINY_SPM_TOKENS } from '../helpers/gguf-llama.ts';
import { T } from '../helpers/gguf-writer.ts';
import { sharedSkip, STORIES_GGUF } from '../helpers/shared-models.ts';

const root = await tempDir('foreign-tok');
after(() => fs.rm(root, { recursive: true, force: true }));

const MERGES: Array<[string, string]> = [
  ['h', 'e'],
  ['Ġ', 't'],
  ['Ġt', 'he'],
  ['Ġ', 'c'],
  ['a', 't'],
  ['Ġc', 'at'],
  ['i', 's'],
  ['Ġ', 'is'],
];

/**
 * A GPT-2-style byte-level BPE tokenizer.json: ids 0..255 the bytes (in byte order), then the
 * merges' results, then the added tokens `added` (special). `postProcessor` as in tokenizer.json.
 */
function byteLevelTokenizer(added: string[], postProcessor: unknown = null): { json: Record<string, unknown>; ids: Record<string, number>; size: number } {
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[BYTE_TO_UNICODE[b]!] = b;
  let next = 256;
  for (const [a, b] of MERGES) vocab[a + b] = next++;
  const ids: Record<string, number> = {};
  const addedTokens = added.map((content) => {
    ids[content] = next;
    vocab[content] = next;
    return { id: next++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    json: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: postProcessor,
      decoder: byteLevel,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES },
    },
    ids,
    size: next,
  };
}

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const chatml = byteLevelTokenizer(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
const chatmlConfig = { tokenizer_class: 'PreTrainedTokenizerFast', chat_template: CHATML, eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', bos_token: null };
const foreign = () => foreignEvalTokenizer({ tokenizer: chatml.json, tokenizerHash: tokenizerHash(chatml.json), tokenizerConfig: chatmlConfig, source: 'test-folder' });

const conversation: Turn[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Is the cat there?' },
  { role: 'assistant', content: 'The cat is there. Café 🙂\nYes.' },
];
const messages = (turns: Turn[]) => turns.map((t) => ({ role: t.role, content: t.content }));
const masked = (ids: number[], mask: Uint8Array) => ids.filter((_, t) => mask[t] === 1);

// An HF GPT-2 folder with the foreign tokenizer and random weights of matching vocabulary.
const model: ModelConfig = { vocab: chatml.size, context: 32, dModel: 16, layers: 1, heads: 2 };
const hfDir = path.join(root, 'foreign-hf');
await writeHfGpt2(hfDir, model, randomWeights(model, 3, 0.2), {
  tokenizer: chatml.json,
  tokenizerConfig: chatmlConfig,
  generationConfig: { eos_token_id: [chatml.ids['<|im_end|>'], chatml.ids['<|endoftext|>']] },
});

test('a hand-built tokenizer.json is foreign: our reader refuses it, the library reads it', () => {
  assert.throws(() => BpeTokenizer.fromJSON(chatml.json), /tokenizer\.json/);
  const tok = foreign();
  assert.match(tok.description, /^chat template from tokenizer_config\.json \(sha256 [0-9a-f]{12}\)$/);
  assert.equal(tok.vocabSize, chatml.size);
  // The merges apply: " the cat" is two tokens.
  assert.deepEqual(tok.encodeText(' the cat'), [256 + 2, 256 + 5]);
  // eos_token, and the template's end-of-turn token found in a rendered answer.
  assert.deepEqual([...tok.stopIds].sort(), [chatml.ids['<|endoftext|>']!, chatml.ids['<|im_end|>']!].sort());
});

test('the loss mask covers exactly the final answer and its end-of-turn token', () => {
  const tok = foreign();
  const enc = tok.encodeChat(conversation);
  const answer = conversation[2]!.content;
  const scored = masked(enc.ids, enc.lossMask);
  assert.equal(tok.decode(scored, { skipSpecial: true }), answer);
  assert.equal(tok.decode(scored), answer + '<|im_end|>');
  assert.equal(scored[scored.length - 1], chatml.ids['<|im_end|>']);
  assert.equal(enc.lossMask.indexOf(1), enc.ids.length - scored.length, 'the scored tokens are one run at the end');
  assert.equal(enc.responseBytes, Buffer.byteLength(answer, 'utf8'));
  // The context is the rendered prompt, token for token what encodePrompt gives.
  const template = new Template(CHATML);
  const promptText = template.render({ messages: messages(conversation.slice(0, 2)), add_generation_prompt: true });
  const context = enc.ids.slice(0, enc.ids.length - scored.length);
  assert.equal(tok.decode(context), promptText);
  assert.deepEqual(context, tok.encodePrompt(conversation.slice(0, 2)));
  // The whole encoding is the rendered conversation without the newline after <|im_end|>.
  assert.equal(tok.decode(enc.ids) + '\n', template.render({ messages: messages(conversation), add_generation_prompt: false }));

  // Multi-turn: only the last answer is scored; earlier ones are context.
  const multi: Turn[] = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'the cat' }, { role: 'user', content: 'and?' }, { role: 'assistant', content: 'is there' }];
  const m = tok.encodeChat(multi);
  assert.equal(tok.decode(masked(m.ids, m.lossMask), { skipSpecial: true }), 'is there');
  // Held-out fitting uses it: every answer token scored once.
  const fitted = fitHeldout(tok, conversation, 16, 'disjoint');
  assert.equal(fitted.scoredTokens, scored.length);
  assert.equal(fitted.windows.reduce((n, w) => n + w.bytes, 0), enc.responseBytes);
});

test('a prompt ends with the generation prompt; a prompt must end with a user turn', () => {
  const tok = foreign();
  const ids = tok.encodePrompt([{ role: 'user', content: 'Is the cat there?' }]);
  assert.ok(tok.decode(ids).endsWith('<|im_start|>assistant\n'));
  assert.equal(tok.decode(ids), '<|im_start|>user\nIs the cat there?<|im_end|>\n<|im_start|>assistant\n');
  assert.throws(() => tok.encodePrompt(conversation), /turns\[2\]\.role: a prompt must end with a user turn/);
});

test("a template whose conversation does not start with its prompt is a clear error naming the template", () => {
  // The generation prompt says "assistant", the rendered answer turn "model".
  const odd =
    "{% for message in messages %}{{ '<|im_start|>' + (message['role'] == 'assistant' and 'model' or message['role']) + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  const tok = foreignEvalTokenizer({ tokenizer: chatml.json, tokenizerHash: 'x', tokenizerConfig: { ...chatmlConfig, chat_template: odd }, source: 'odd-folder' });
  assert.throws(
    () => tok.encodeChat(conversation),
    /odd-folder: chat template from tokenizer_config\.json \(sha256 [0-9a-f]+\): the rendered conversation does not start with the rendered prompt.*prompt has "assistant\\n", conversation "model\\n/,
  );
  // A template that raises names itself too.
  const strict = foreignEvalTokenizer({ tokenizer: chatml.json, tokenizerHash: 'x', tokenizerConfig: { ...chatmlConfig, chat_template: "{{ raise_exception('no system turns') }}" }, source: 'strict-folder' });
  assert.throws(() => strict.encodePrompt([{ role: 'user', content: 'x' }]), /strict-folder: chat template from tokenizer_config\.json .*rendering failed: no system turns/);
});

test('a Zephyr-style template gets bos_token and eos_token as transformers passes them', () => {
  // Zephyr's layout: "<|role|>\n" + content + eos_token per turn, "<|assistant|>" as the generation
  // prompt (so the newline after it belongs to the answer's part), bos_token written by the template.
  const zephyr =
    "{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";
  const z = byteLevelTokenizer(['<s>', '</s>', '<|user|>', '<|assistant|>', '<|system|>']);
  const tok = foreignEvalTokenizer({ tokenizer: z.json, tokenizerHash: 'z', tokenizerConfig: { chat_template: zephyr, bos_token: { content: '<s>', special: true }, eos_token: '</s>' }, source: 'zephyr-folder' });
  assert.deepEqual(tok.stopIds, [z.ids['</s>']]);
  const enc = tok.encodeChat(conversation);
  assert.equal(enc.ids[0], z.ids['<s>'], 'the template writes the BOS, once');
  assert.notEqual(enc.ids[1], z.ids['<s>']);
  assert.equal(tok.decode(masked(enc.ids, enc.lossMask)), '\n' + conversation[2]!.content + '</s>');
  assert.ok(tok.decode(tok.encodePrompt(conversation.slice(0, 2))).endsWith('Is the cat there?</s>\n<|assistant|>'));
});

test('without a chat template: the plain template, named, with the BOS the post-processor adds', () => {
  const bosProcessor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [256 + MERGES.length], tokens: ['<s>'] } },
  };
  const plain = byteLevelTokenizer(['<s>', '</s>'], bosProcessor);
  const tok = foreignEvalTokenizer({ tokenizer: plain.json, tokenizerHash: 'p', tokenizerConfig: { bos_token: '<s>', eos_token: '</s>' }, source: 'plain-folder' });
  assert.match(tok.description, /^plain template \(Alpaca style, the tokenizer has no chat_template\): "### Instruction:/);
  assert.deepEqual(tok.stopIds, [plain.ids['</s>']]);
  const prompt = tok.encodePrompt([{ role: 'user', content: 'Is the cat there?' }]);
  assert.equal(prompt[0], plain.ids['<s>']);
  assert.equal(tok.decode(prompt), '<s>### Instruction:\nIs the cat there?\n\n### Response:\n');
  const enc = tok.encodeChat(conversation.slice(1));
  assert.equal(tok.decode(masked(enc.ids, enc.lossMask)), conversation[2]!.content + '</s>');
  assert.deepEqual(enc.ids.slice(0, prompt.length), prompt);
  assert.deepEqual(tok.encodeText('the cat').slice(0, 1), [plain.ids['<s>']]);
  // add_bos_token: false in tokenizer_config.json wins over the post-processor.
  const noBos = foreignEvalTokenizer({ tokenizer: plain.json, tokenizerHash: 'p', tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', add_bos_token: false }, source: 'plain-folder' });
  assert.equal(noBos.decode(noBos.encodePrompt([{ role: 'user', content: 'x' }])), '### Instruction:\nx\n\n### Response:\n');
  assert.ok(PLAIN_TEMPLATE.includes('### Response:'));
  // No eos_token and a template with no special token: nothing to stop generation at.
  assert.throws(
    () => foreignEvalTokenizer({ tokenizer: plain.json, tokenizerHash: 'p', tokenizerConfig: {}, source: 'nostop-folder' }),
    /nostop-folder: no stop token: tokenizer_config\.json has no eos_token known to tokenizer\.json, generation_config\.json no eos_token_id, and plain template/,
  );
});

test('checkpointTokenizer: a foreign HF folder gets its template; our checkpoints keep our ids, masks and cache key', async () => {
  const ck = await loadAnyCheckpoint(hfDir);
  const tok = await checkpointTokenizer(ck, hfDir);
  assert.match(tok.description, /chat template from tokenizer_config\.json/);
  assert.deepEqual(tok.encodeChat(conversation).ids, foreign().encodeChat(conversation).ids);
  assert.notEqual(tok.key, ck.tokenizerHash, 'the template is part of the key');

  const { list, tok: ours } = await writeCheckpoints(path.join(root, 'run'), 1, { context: 32, dModel: 16, layers: 1, heads: 2 });
  const native = await loadCheckpoint(list[0]!.dir);
  const exported = path.join(root, 'ours-hf');
  assert.equal(await exportCommand(['--checkpoint', list[0]!.dir, '--format', 'hf', '--out', exported], () => {}), 0);
  const records = makeRecords('same', 5, 11);
  for (const dir of [list[0]!.dir, exported]) {
    const et = await checkpointTokenizer(await loadAnyCheckpoint(dir), dir);
    assert.equal(et.description, NATIVE_FORMAT_DESCRIPTION);
    assert.equal(et.key, native.tokenizerHash, 'the cache key is the tokenizer hash, as before');
    assert.deepEqual(et.stopIds, [ours.special.eot]);
    for (const r of records) {
      const a = et.encodeChat(r.turns);
      const b = encodeChat(ours, r.turns);
      assert.deepEqual(a.ids, b.ids);
      assert.deepEqual(a.lossMask, b.lossMask);
      assert.equal(a.responseBytes, b.responseBytes);
      assert.deepEqual(et.encodePrompt(r.turns.slice(0, 1)), encodePrompt(ours, r.turns.slice(0, 1)));
    }
  }
  // Our tokenizer under another chat template is read through the library with that template.
  const retemplated = path.join(root, 'ours-chatml');
  await fs.cp(exported, retemplated, { recursive: true });
  const cfgFile = path.join(retemplated, 'tokenizer_config.json');
  await fs.writeFile(cfgFile, JSON.stringify({ ...JSON.parse(await fs.readFile(cfgFile, 'utf8')), chat_template: "{% for message in messages %}{{ message['content'] + '<|eot|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}" }));
  const other = await checkpointTokenizer(await loadAnyCheckpoint(retemplated), retemplated);
  assert.match(other.description, /chat template from tokenizer_config\.json/);
  assert.notEqual(other.key, native.tokenizerHash);
});

test('the perplexity and generate commands run on the foreign folder', async () => {
  const textFile = path.join(root, 'text.txt');
  const text = 'the cat is there. '.repeat(12);
  await fs.writeFile(textFile, text);
  const lines: string[] = [];
  assert.equal(await perplexityCommand(['--model', hfDir, '--text', textFile], (t) => lines.push(t)), 0);
  const result = JSON.parse(lines[0]!) as { tokens: number; perplexity: number; bitsPerByte: number };
  assert.equal(result.tokens, foreign().encodeText(text).length - 1);
  assert.ok(Number.isFinite(result.perplexity) && result.perplexity > 1, `perplexity ${result.perplexity}`);
  assert.ok(Number.isFinite(result.bitsPerByte) && result.bitsPerByte > 0);

  const out: string[] = [];
  assert.equal(await generateCommand(['--model', hfDir, '--prompt', 'Is the cat there?', '--chat', '--json', '--max-new-tokens', '6'], (t) => out.push(t)), 0);
  const gen = JSON.parse(out[0]!) as { continuation: string; ids: number[]; newTokens: number; promptTokens: number; chatFormat: string };
  assert.equal(gen.promptTokens, foreign().encodePrompt([{ role: 'user', content: 'Is the cat there?' }]).length);
  assert.match(gen.chatFormat, /chat template from tokenizer_config\.json/);
  assert.ok(gen.newTokens >= 1 && gen.newTokens <= 6);
  assert.equal(typeof gen.continuation, 'string');
  const plainOut: string[] = [];
  assert.equal(await generateCommand(['--model', hfDir, '--prompt', 'the cat', '--max-new-tokens', '3', '--temperature', '0'], (t) => plainOut.push(t)), 0);
  assert.equal(plainOut.length, 1);
});

test('a pooled evaluation of the foreign folder records its chat format', async () => {
  const heldout = makeRecords('h', 3, 5);
  const dev = makeRecords('d', 2, 6);
  const res = await runEvaluation({
    checkpoints: [{ epoch: 1, dir: hfDir }],
    heldout,
    dev,
    outDir: path.join(root, 'eval'),
    config: { ...defaultEvalConfig, workers: 1, maxLength: 32, generation: { ...defaultEvalConfig.generation, maxNewTokens: 4 } },
    seed: 1,
    quiet: true,
    pool: { workers: 1, threads: 1 },
  });
  assert.equal(res.perplexity.length, 3);
  const tok = foreign();
  const expectedTokens = heldout.reduce((n, r) => n + masked(tok.encodeChat(r.turns).ids, tok.encodeChat(r.turns).lossMask).length, 0);
  assert.equal(res.perCheckpoint[0]!.tokens, expectedTokens);
  assert.equal(res.generations.length, 2);
  assert.match(res.chatFormats[0]!.description, /chat template from tokenizer_config\.json/);
  assert.deepEqual(groupChatFormats([...res.chatFormats, { epoch: 2, description: res.chatFormats[0]!.description }, { epoch: 3, description: 'x' }]), [
    { description: res.chatFormats[0]!.description, epochs: [1, 2] },
    { description: 'x', epochs: [3] },
  ]);
});

test('checkpointTokenizer: a GGUF file takes its tokenizer config and chat template from its metadata, nothing beside the file', async () => {
  const dir = path.join(root, 'gguf');
  await fs.mkdir(dir, { recursive: true });
  // Files beside a GGUF file belong to something else: never read (this one is not even JSON).
  await fs.writeFile(path.join(dir, 'tokenizer_config.json'), 'not json');
  const plainFile = path.join(dir, 'plain-1.gguf');
  await fs.writeFile(plainFile, tinyLlamaGguf(1));
  const plain = await checkpointTokenizer(await loadAnyCheckpoint(plainFile), plainFile);
  assert.match(plain.description, /^plain template/);
  assert.deepEqual(plain.stopIds, [2], '</s> (tokenizer.ggml.eos_token_id)');
  // Plain text as llama.cpp encodes it: BOS, then "▁the" and byte fallback for what the vocabulary lacks.
  const ids = plain.encodeText('the É');
  assert.equal(ids[0], 1, 'BOS first');
  assert.equal(ids[1], TINY_SPM_TOKENS.indexOf('▁the'));
  assert.deepEqual(ids.slice(-2), [3 + 0xc3, 3 + 0x89], 'É as its two UTF-8 bytes');
  assert.equal(plain.decode(ids, { skipSpecial: true }), 'the É');
  const prompt = plain.encodePrompt([{ role: 'user', content: 'hi' }]);
  assert.equal(prompt[0], 1);
  assert.match(plain.decode(prompt, { skipSpecial: true }), /^### Instruction:\nhi\n\n### Response:\n$/);

  const templated = path.join(dir, 'templated-2.gguf');
  await fs.writeFile(templated, tinyLlamaGguf(2, {}, 0.3, [['tokenizer.chat_template', T.STR, "{% for m in messages %}{{ bos_token + '[' + m.role + '] ' + m.content + eos_token }}{% endfor %}{% if add_generation_prompt %}{{ bos_token + '[assistant] ' }}{% endif %}"]]));
  const chat = await checkpointTokenizer(await loadAnyCheckpoint(templated), templated);
  assert.match(chat.description, /^chat template from the GGUF metadata \(tokenizer\.chat_template\)/);
  const enc = chat.encodeChat([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'the' }]);
  assert.equal(chat.decode(enc.ids.filter((_, t) => enc.lossMask[t] === 1)), 'the</s>', 'the answer and the template\'s </s> are scored');
  // Ids, not just text: the generation prompt ends with a space, which SentencePiece joins to the
  // answer ("▁the"), so the whole text's encoding is scored from where it leaves the prompt's.
  const hf = new Tokenizer((await loadAnyCheckpoint(templated)).tokenizer as object, {});
  const whole = hf.encode('<s>[user] hi</s><s>[assistant] the</s>', { add_special_tokens: false }).ids;
  assert.deepEqual(enc.ids, whole, 'the conversation is the whole rendered text, encoded once');
  assert.deepEqual(masked(enc.ids, enc.lossMask), [TINY_SPM_TOKENS.indexOf('▁the'), 2]);
  assert.equal(enc.responseBytes, Buffer.byteLength(' the'), 'the answer and the space before it; </s> counts 0');
  assert.notEqual(chat.key, plain.key);
});

/**
 * A SentencePiece-style tokenizer.json as Llama 2's in transformers: normalizer Prepend("▁") +
 * Replace(" ", "▁") (or, with `metaspace`, a Metaspace pre-tokenizer prepending "▁" to the
 * first word), BPE with byte fallback over <unk> <s> </s>, the 256 byte tokens, "▁", printable
 * ASCII and a few merges.
 */
function spmTokenizer(metaspace = false): Record<string, unknown> {
  const pieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`), '▁'];
  for (let c = 33; c < 127; c++) pieces.push(String.fromCharCode(c));
  const merges: Array<[string, string]> = [['▁', 't'], ['h', 'e'], ['▁t', 'he'], ['▁', 'c'], ['a', 't'], ['▁c', 'at'], ['I', 'N'], ['S', 'T'], ['IN', 'ST'], ['[', 'INST'], ['[INST', ']'], ['▁', '['], ['▁[', 'INST]'], ['[', '/'], ['[/', 'INST'], ['[/INST', ']'], ['▁', '[/INST]'], ['▁', 'i'], ['▁i', 's']];
  for (const [a, b] of merges) pieces.push(a + b);
  const vocab: Record<string, number> = {};
  pieces.forEach((p, i) => (vocab[p] = i));
  const added = [0, 1, 2].map((id) => ({ id, content: pieces[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const decoders: unknown[] = [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: metaspace ? null : { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: metaspace ? { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } : null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}

// Llama 2's layout: "<s>[INST] {user} [/INST] {answer} </s>", no generation prompt.
const LLAMA2 =
  "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";

for (const metaspace of [false, true]) {
  test(`SentencePiece (${metaspace ? 'Metaspace pre-tokenizer' : 'Prepend normalizer'}), Llama 2 template: the scored ids are the whole text's encoding after the prompt's`, () => {
    const json = spmTokenizer(metaspace);
    const tok = foreignEvalTokenizer({ tokenizer: json, tokenizerHash: 'spm', tokenizerConfig: { chat_template: LLAMA2, bos_token: '<s>', eos_token: '</s>' }, source: 'spm-folder' });
    const hf = new Tokenizer(json, {});
    const vocab = (json.model as { vocab: Record<string, number> }).vocab;
    const turns: Turn[] = [{ role: 'user', content: 'Is the cat there?' }, { role: 'assistant', content: 'the cat is there' }];
    const full = new Template(LLAMA2).render({ messages: messages(turns), bos_token: '<s>', eos_token: '</s>' });
    assert.equal(full, '<s>[INST] Is the cat there? [/INST] the cat is there </s>');
    const whole = hf.encode(full, { add_special_tokens: false }).ids;
    const prompt = tok.encodePrompt(turns.slice(0, 1));
    assert.deepEqual(whole.slice(0, prompt.length), prompt, "the prompt's ids begin the whole text's");
    const enc = tok.encodeChat(turns);
    assert.deepEqual(enc.ids, whole);
    const scored = masked(enc.ids, enc.lossMask);
    assert.deepEqual(scored, whole.slice(prompt.length));
    // " the cat is there </s>": no lone "▁" from tokenizing the suffix on its own.
    assert.equal(scored[0], vocab['▁the']);
    assert.deepEqual(scored.slice(0, 2), [vocab['▁the'], vocab['▁cat']]);
    assert.equal(scored[scored.length - 1], vocab['</s>']);
    // The suffix on its own would have started with a dummy-prefix "▁" (the old rule's bug).
    const alone = hf.encode(' the cat is there </s>', { add_special_tokens: false }).ids;
    if (!metaspace) assert.equal(alone[0], vocab['▁']);
    // Bytes: the suffix's text without </s>, spread over the scored tokens.
    assert.equal(enc.responseBytes, Buffer.byteLength(' the cat is there '));
    assert.equal(fitHeldout(tok, turns, 64, 'disjoint').windows.reduce((n, w) => n + w.bytes, 0), enc.responseBytes);

    // Plain text: with a BOS every token is scored, and the bytes are the text's.
    const plain = foreignEvalTokenizer({ tokenizer: json, tokenizerHash: 'spm', tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', add_bos_token: true }, source: 'spm-plain' });
    const text = 'the cat is there';
    const ids = plain.encodeText(text);
    assert.equal(ids[0], vocab['<s>']);
    assert.equal(ids[1], vocab['▁the'], 'the dummy prefix "▁" is in the first token');
    const bytes = plain.textTokenBytes!(text, ids);
    assert.equal(bytes.length, ids.length);
    assert.equal(bytes[0], 0);
    assert.equal(bytes[1], 3, '"▁the" stands for "the" here');
    assert.equal(bytes.reduce((a, b) => a + b, 0), Buffer.byteLength(text));
  });
}

test('a generation prompt ending in a space: the whole text from where it leaves the prompt (SentencePiece), the answer alone (byte-level)', () => {
  // "A: " then the answer: SentencePiece writes the space into the answer's first token.
  const template = "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'Q: ' + message['content'] + '\n' }}{% else %}{{ 'A: ' + message['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'A: ' }}{% endif %}";
  const json = spmTokenizer();
  const vocab = (json.model as { vocab: Record<string, number> }).vocab;
  const tok = foreignEvalTokenizer({ tokenizer: json, tokenizerHash: 'spm', tokenizerConfig: { chat_template: template, bos_token: '<s>', eos_token: '</s>' }, source: 'spm-space' });
  const turns: Turn[] = [{ role: 'user', content: 'is it' }, { role: 'assistant', content: 'the cat' }];
  const whole = new Tokenizer(json, {}).encode('Q: is it\nA: the cat</s>', { add_special_tokens: false }).ids;
  const prompt = tok.encodePrompt(turns.slice(0, 1));
  assert.equal(prompt[prompt.length - 1], vocab['▁'], 'the prompt ends with a lone "▁"');
  const enc = tok.encodeChat(turns);
  assert.deepEqual(enc.ids, whole);
  const k = enc.lossMask.indexOf(1);
  assert.deepEqual(enc.ids.slice(0, k), prompt.slice(0, -1), 'the context is the prompt up to where the whole text leaves it');
  assert.deepEqual(masked(enc.ids, enc.lossMask), [vocab['▁the'], vocab['▁cat'], vocab['</s>']]);
  assert.equal(enc.responseBytes, Buffer.byteLength(' the cat'));

  // Byte-level BPE: the answer tokenized alone continues the prompt's ids exactly.
  const chat = foreignEvalTokenizer({ tokenizer: chatml.json, tokenizerHash: 'x', tokenizerConfig: { ...chatmlConfig, chat_template: template.replace(/eos_token/g, "'<|im_end|>'") }, source: 'bl-space' });
  const bl = chat.encodeChat(turns);
  const blPrompt = chat.encodePrompt(turns.slice(0, 1));
  assert.deepEqual(bl.ids.slice(0, blPrompt.length), blPrompt);
  assert.equal(bl.lossMask.indexOf(1), blPrompt.length);
  assert.equal(chat.decode(masked(bl.ids, bl.lossMask)), 'the cat<|im_end|>');
  assert.equal(bl.responseBytes, Buffer.byteLength('the cat'));
});

test('stories260K (real GGUF), plain template: the scored ids are the whole text\'s encoding after the prompt\'s', { skip: sharedSkip }, async () => {
  const ck = await loadAnyCheckpoint(STORIES_GGUF);
  const tok = await checkpointTokenizer(ck, STORIES_GGUF);
  assert.match(tok.description, /^plain template/);
  const hf = new Tokenizer(ck.tokenizer as object, {});
  const answer = 'Once upon a time, there was a little girl named Lily.';
  const turns: Turn[] = [{ role: 'user', content: 'Tell me a story.' }, { role: 'assistant', content: answer }];
  const prompt = tok.encodePrompt(turns.slice(0, 1));
  assert.equal(prompt[0], 1, 'BOS');
  const whole = [1, ...hf.encode(`### Instruction:\nTell me a story.\n\n### Response:\n${answer}</s>`, { add_special_tokens: false }).ids];
  assert.deepEqual(whole.slice(0, prompt.length), prompt);
  const enc = tok.encodeChat(turns);
  assert.deepEqual(enc.ids, whole);
  const scored = masked(enc.ids, enc.lossMask);
  assert.deepEqual(scored, whole.slice(prompt.length));
  // After a newline "Once" has no "▁" (the old rule scored "▁Once", the start of a text).
  assert.notEqual(scored[0], hf.token_to_id('▁Once'));
  assert.equal(hf.decode(scored), answer + '</s>');
  assert.equal(enc.responseBytes, Buffer.byteLength(answer));
  // Plain text: BOS first, every text token scored, bytes the text's.
  const text = 'Once upon a time, there was a little girl.';
  const ids = tok.encodeText(text);
  assert.equal(ids[1], hf.token_to_id('▁Once'));
  assert.equal(tok.textTokenBytes!(text, ids).reduce((a, b) => a + b, 0), Buffer.byteLength(text));
});
