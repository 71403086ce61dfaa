// The one token layout shared by training and evaluation:
//   <|role|> content <|eot|>   for every turn, in order.
// Loss falls on the assistant's content tokens and the assistant's <|eot|> (so the model learns
// to stop); role tokens and every other turn are context only.
import type { ChatRecord, Role, Turn } from './types.ts';
import type { BpeTokenizer } from './tokenizer.ts';

export interface EncodedChat {
  ids: number[];
  /** 1 = ids[t] is a target, predicted from ids[0..t-1]. Position 0 is never a target. */
  lossMask: Uint8Array;
  /** True when the conversation was cut at maxLength (the beginning is kept). */
  trimmed: boolean;
  /** UTF-8 bytes of the assistant text whose tokens remain scored (for bits per byte). */
  responseBytes: number;
}

const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

function roleId(tok: BpeTokenizer, role: Role): number {
  return tok.special[role];
}

function checkTurns(turns: readonly Turn[]): void {
  if (!Array.isArray(turns) || turns.length === 0) throw new TypeError('chat: turns: expected a non-empty array of turns');
  turns.forEach((turn, i) => {
    if (!ROLES.includes(turn?.role)) {
      throw new TypeError(`chat: turns[${i}].role: expected one of ${ROLES.join(', ')}, got ${JSON.stringify(turn?.role)}`);
    }
    if (typeof turn.content !== 'string') {
      throw new TypeError(`chat: turns[${i}].content: expected a string, got ${typeof turn.content}`);
    }
  });
}

/**
 * The whole conversation as one example. With `maxLength`, keeps the first `maxLength` tokens
 * (so the prompt survives and the end of a long answer is dropped) and sets `trimmed`.
 */
export function encodeChat(tok: BpeTokenizer, turns: Turn[], maxLength?: number): EncodedChat {
  checkTurns(turns);
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 2)) {
    throw new RangeError(`chat: maxLength: expected an integer >= 2, got ${maxLength}`);
  }
  const ids: number[] = [];
  const mask: number[] = [];
  for (const turn of turns) {
    const scored = turn.role === 'assistant' ? 1 : 0;
    ids.push(roleId(tok, turn.role));
    mask.push(0);
    for (const id of tok.encode(turn.content)) {
      ids.push(id);
      mask.push(scored);
    }
    ids.push(tok.special.eot);
    mask.push(scored);
  }
  const trimmed = maxLength !== undefined && ids.length > maxLength;
  const length = trimmed ? maxLength : ids.length;
  const keptIds = ids.slice(0, length);
  const lossMask = Uint8Array.from(mask.slice(0, length));
  lossMask[0] = 0;
  let responseBytes = 0;
  for (let t = 0; t < length; t++) {
    // Special tokens have 0 bytes, so the assistant's <|eot|> adds nothing here.
    if (lossMask[t] === 1) responseBytes += tok.tokenByteLength(keptIds[t]);
  }
  return { ids: keptIds, lossMask, trimmed, responseBytes };
}

/**
 * The context for generating the next assistant turn: every turn as in encodeChat, then
 * <|assistant|>. The turns must end with a user turn.
 */
export function encodePrompt(tok: BpeTokenizer, turns: Turn[]): number[] {
  checkTurns(turns);
  const last = turns[turns.length - 1];
  if (last.role !== 'user') {
    throw new TypeError(`chat: turns[${turns.length - 1}].role: a prompt must end with a user turn, got ${JSON.stringify(last.role)}`);
  }
  const ids: number[] = [];
  for (const turn of turns) {
    ids.push(roleId(tok, turn.role));
    for (const id of tok.encode(turn.content)) ids.push(id);
    ids.push(tok.special.eot);
  }
  ids.push(tok.special.assistant);
  return ids;
}

/** The texts the BPE is trained on: every turn's content (role markers are special tokens, never merged). */
export function trainingTexts(records: ChatRecord[]): string[] {
  const texts: string[] = [];
  for (const record of records) {
    for (const turn of record.turns) texts.push(turn.content);
  }
  return texts;
}

/**
 * The chat format above as a Hugging Face `chat_template` (Jinja, for tokenizer_config.json):
 * rendering `messages` gives `<|role|>content<|eot|>` per turn and, with add_generation_prompt,
 * a final `<|assistant|>`; a tokenizer that splits out the special tokens (HF tokenizers does)
 * then gives encodeChat's / encodePrompt's ids. A role other than system, user or assistant
 * raises. No BOS token: our models are trained without one.
 */
export const CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] not in ['system', 'user', 'assistant'] %}" +
  "{{ raise_exception('lima-harness chat format: a role must be system, user or assistant, got ' + message['role']) }}{% endif %}" +
  "{{ '<|' + message['role'] + '|>' + message['content'] + '<|eot|>' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";
