import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpeTokenizer } from '../../src/data/tokenizer.ts';
import { encodeChat, encodePrompt, trainingTexts } from '../../src/data/chat-format.ts';
import type { ChatRecord, Turn } from '../../src/data/types.ts';

const RECORDS: ChatRecord[] = [
  {
    id: 'lima-000001',
    source: 'test',
    turns: [
      { role: 'user', content: 'How do I boil an egg?' },
      { role: 'assistant', content: 'Put the egg in boiling water for nine minutes, then cool it.' },
    ],
  },
  {
    id: 'lima-000002',
    source: 'test',
    turns: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say hi in Japanese.' },
      { role: 'assistant', content: 'こんにちは 👋' },
      { role: 'user', content: 'And in French?' },
      { role: 'assistant', content: 'Bonjour.' },
    ],
  },
];

const tok = BpeTokenizer.train([...trainingTexts(RECORDS), ...trainingTexts(RECORDS)], 300);
const { eot, system, user, assistant } = tok.special;

test('trainingTexts gives every turn content, in order', () => {
  assert.deepEqual(trainingTexts(RECORDS), [
    'How do I boil an egg?',
    'Put the egg in boiling water for nine minutes, then cool it.',
    'You are terse.',
    'Say hi in Japanese.',
    'こんにちは 👋',
    'And in French?',
    'Bonjour.',
  ]);
});

test('layout is <|role|> content <|eot|> per turn; loss only on assistant content and its eot', () => {
  const [u, a] = RECORDS[0].turns;
  const uIds = tok.encode(u.content);
  const aIds = tok.encode(a.content);
  const chat = encodeChat(tok, RECORDS[0].turns);
  assert.deepEqual(chat.ids, [user, ...uIds, eot, assistant, ...aIds, eot]);
  const expectedMask = [0, ...uIds.map(() => 0), 0, 0, ...aIds.map(() => 1), 1];
  assert.deepEqual([...chat.lossMask], expectedMask);
  assert.equal(chat.lossMask.length, chat.ids.length);
  assert.equal(chat.trimmed, false);
  assert.equal(chat.responseBytes, Buffer.byteLength(a.content, 'utf8'));
  // The masked tokens decode back to exactly the assistant text plus its end-of-turn.
  const scored = chat.ids.filter((_, t) => chat.lossMask[t] === 1);
  assert.equal(tok.decode(scored), a.content + '<|eot|>');
});

test('multi-turn with a system prompt: every assistant turn is scored, nothing else', () => {
  const turns = RECORDS[1].turns;
  const chat = encodeChat(tok, turns);
  let t = 0;
  for (const turn of turns) {
    const content = tok.encode(turn.content);
    const scored = turn.role === 'assistant' ? 1 : 0;
    assert.equal(chat.ids[t], tok.special[turn.role]);
    assert.equal(chat.lossMask[t], 0, 'role tokens are context');
    t++;
    for (const id of content) {
      assert.equal(chat.ids[t], id);
      assert.equal(chat.lossMask[t], scored);
      t++;
    }
    assert.equal(chat.ids[t], eot);
    assert.equal(chat.lossMask[t], scored, `${turn.role} eot`);
    t++;
  }
  assert.equal(t, chat.ids.length);
  assert.equal(chat.ids[0], system);
  assert.equal(chat.responseBytes, Buffer.byteLength('こんにちは 👋' + 'Bonjour.', 'utf8'));
});

test('trimming keeps the beginning, sets trimmed, and counts only the bytes still scored', () => {
  const full = encodeChat(tok, RECORDS[0].turns);
  const firstAssistantContent = full.ids.indexOf(assistant) + 1;
  const keepScored = 3;
  const maxLength = firstAssistantContent + keepScored;
  const cut = encodeChat(tok, RECORDS[0].turns, maxLength);
  assert.equal(cut.trimmed, true);
  assert.equal(cut.ids.length, maxLength);
  assert.deepEqual(cut.ids, full.ids.slice(0, maxLength));
  assert.deepEqual([...cut.lossMask], [...full.lossMask.slice(0, maxLength)]);
  const keptText = tok.decode(cut.ids.slice(firstAssistantContent));
  assert.equal(cut.responseBytes, Buffer.byteLength(keptText, 'utf8'));
  assert.ok(cut.responseBytes > 0 && cut.responseBytes < full.responseBytes);

  // Cut inside the prompt: nothing is scored.
  const promptOnly = encodeChat(tok, RECORDS[0].turns, 4);
  assert.equal(promptOnly.trimmed, true);
  assert.deepEqual([...promptOnly.lossMask], [0, 0, 0, 0]);
  assert.equal(promptOnly.responseBytes, 0);

  // Exactly the full length is not a trim.
  const exact = encodeChat(tok, RECORDS[0].turns, full.ids.length);
  assert.equal(exact.trimmed, false);
  assert.equal(exact.responseBytes, full.responseBytes);
});

test('responseBytes counts raw bytes even when a cut splits a multi-byte character', () => {
  const turns: Turn[] = [
    { role: 'user', content: 'x' },
    // Never seen in training, so each emoji stays 4 single-byte tokens and cuts can split it.
    { role: 'assistant', content: '🦀🦀🦀' },
  ];
  const full = encodeChat(tok, turns);
  assert.equal(full.responseBytes, 12);
  const start = full.ids.indexOf(assistant) + 1;
  let splitSeen = false;
  for (let keep = 1; keep <= full.ids.length - start - 1; keep++) {
    const cut = encodeChat(tok, turns, start + keep);
    const raw = cut.ids.slice(start).reduce((sum, id) => sum + tok.tokenByteLength(id), 0);
    assert.equal(cut.responseBytes, raw);
    assert.equal(cut.responseBytes, keep * tok.tokenByteLength(cut.ids[start]));
    if (cut.responseBytes % 4 !== 0) splitSeen = true;
  }
  assert.ok(splitSeen, 'some cut falls inside a character');
});

test('encodePrompt is the chat prefix ending in <|assistant|>', () => {
  const turns = RECORDS[1].turns;
  const prompt = encodePrompt(tok, turns.slice(0, 4));
  const chat = encodeChat(tok, turns);
  assert.equal(prompt[prompt.length - 1], assistant);
  assert.deepEqual(prompt, chat.ids.slice(0, prompt.length));
  assert.equal(chat.lossMask.slice(0, prompt.length).reduce((s, v) => s + v, 0), tok.encode(turns[2].content).length + 1, 'only the first answer is scored in the prefix');
  assert.throws(() => encodePrompt(tok, RECORDS[0].turns), /turns\[1\]\.role: a prompt must end with a user turn/);
});

test('bad input: errors name the turn and field', () => {
  assert.throws(() => encodeChat(tok, [{ role: 'bot' as never, content: 'x' }]), /turns\[0\]\.role/);
  assert.throws(() => encodeChat(tok, [{ role: 'user', content: 5 as never }]), /turns\[0\]\.content/);
  assert.throws(() => encodeChat(tok, []), /turns/);
  assert.throws(() => encodeChat(tok, RECORDS[0].turns, 1), /maxLength/);
});
