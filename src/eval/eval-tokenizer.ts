// The tokenizer and chat format evaluation reads a checkpoint with: held-out perplexity, dev
// generations, `generate` and `perplexity` all go through EvalTokenizer, whoever wrote the
// checkpoint.
//
// - Ours (nativeEvalTokenizer): our byte-level BPE and our chat layout (src/data/chat-format.ts:
//   `<|role|> content <|eot|>`), exactly the ids and masks training used. Its cache key is the
//   tokenizer's content hash alone, as before this module existed, so stored results still match.
// - Any other Hugging Face tokenizer.json (foreignEvalTokenizer): tokenized by the maintained
//   library @huggingface/tokenizers, conversations laid out by the model's own chat template
//   (tokenizer_config.json's `chat_template`, or chat_template.jinja) rendered with
//   @huggingface/jinja as transformers' apply_chat_template does (messages, add_generation_prompt,
//   bos_token, eos_token, unk_token, pad_token, raise_exception; the rendered text tokenized
//   without adding special tokens, since templates write their own BOS). With no chat template,
//   PLAIN_TEMPLATE (Alpaca style), with the tokenizer's BOS prepended when its post-processor or
//   tokenizer_config.json's add_bos_token says so. The whole rendered conversation is tokenized
//   at once and the tokens after the prompt's are scored; bytes for bits per byte come from the
//   scored text, not from token strings (see foreignEvalTokenizer).
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import type { Role, Turn } from '../data/types.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { encodeChat, encodePrompt, type EncodedChat } from '../data/chat-format.ts';
import { stableHash } from '../util/hash.ts';

/**
 * A conversation encoded for scoring: ids, the loss mask (1 = scored target) and answer bytes.
 * `tokenBytes` (length ids.length, 0 where lossMask is 0), when present, gives the UTF-8 bytes
 * each scored token stands for, summing to responseBytes; absent (our tokenizer), a token's bytes
 * are tokenByteLength(id).
 */
export type EvalEncodedChat = EncodedChat & { tokenBytes?: number[] };

export interface EvalTokenizer {
  /**
   * The chat format in words, for metrics.json and the report, e.g. "chat template from
   * tokenizer_config.json (sha256 1a2b3c4d5e6f)" or "plain template (...)".
   */
  readonly description: string;
  /**
   * Stable identity for caches: the tokenizer's content hash (ours, unchanged since before this
   * module), or a hash of it, the template, BOS/EOS, lead and stop ids and FOREIGN_SCORING_RULE (foreign).
   */
  readonly key: string;
  /** Ids are in 0..vocabSize-1. */
  readonly vocabSize: number;
  /** Generation stops after sampling any of these (end of turn / end of sequence); never empty. */
  readonly stopIds: readonly number[];
  /**
   * A whole conversation for scoring: ids (length n), lossMask (n, 1 on the answer's tokens and
   * the end-of-turn token when the format has one; position 0 never), responseBytes (UTF-8 bytes
   * the scored tokens stand for; special tokens count 0), trimmed (always false here), and for a
   * foreign tokenizer tokenBytes (per position, see EvalEncodedChat).
   */
  encodeChat(turns: Turn[]): EvalEncodedChat;
  /** The context for generating the next assistant turn (turns end with a user turn), ending with the generation prompt. */
  encodePrompt(turns: Turn[]): number[];
  /** Plain text as the `perplexity` command scores it (with the BOS the tokenizer adds, if any). */
  encodeText(text: string): number[];
  /**
   * UTF-8 bytes of `text` each of `ids` (encodeText(text), length n) stands for: n numbers, 0 for
   * special tokens (BOS), summing to the text's UTF-8 length. Absent (our tokenizer), a token's
   * bytes are tokenByteLength(id), exact for a byte-level vocabulary.
   */
  textTokenBytes?(text: string, ids: readonly number[]): number[];
  decode(ids: readonly number[], options?: { skipSpecial?: boolean }): string;
  /** UTF-8 bytes a token stands for (0 for special tokens). */
  tokenByteLength(id: number): number;
}

/** How our own chat format is described in metrics.json and the report. */
export const NATIVE_FORMAT_DESCRIPTION = 'lima-harness chat format (<|role|> content <|eot|> per turn, <|assistant|> as the generation prompt)';

/**
 * Our BpeTokenizer and chat format as an EvalTokenizer: the ids, masks and bytes are exactly
 * encodeChat's / encodePrompt's / encode's. `key` is the tokenizer's content hash (tokenizerHash).
 */
export function nativeEvalTokenizer(tok: BpeTokenizer, key: string): EvalTokenizer {
  return {
    description: NATIVE_FORMAT_DESCRIPTION,
    key,
    vocabSize: tok.vocabSize,
    stopIds: [tok.special.eot],
    encodeChat: (turns) => encodeChat(tok, turns),
    encodePrompt: (turns) => encodePrompt(tok, turns),
    encodeText: (text) => tok.encode(text),
    decode: (ids, options = {}) => tok.decode(ids, { skipSpecial: options.skipSpecial }),
    tokenByteLength: (id) => tok.tokenByteLength(id),
  };
}

/** `tok` as an EvalTokenizer (a BpeTokenizer is wrapped with nativeEvalTokenizer and an empty key). */
export function asEvalTokenizer(tok: BpeTokenizer | EvalTokenizer): EvalTokenizer {
  return tok instanceof BpeTokenizer ? nativeEvalTokenizer(tok, '') : tok;
}

/**
 * The plain template used when a tokenizer has no chat template: the Alpaca instruction format,
 * "{system}\n\n" then per exchange "### Instruction:\n{user}\n\n### Response:\n{assistant}{eos}"
 * (exchanges separated by a blank line); the generation prompt is "### Response:\n".
 */
export const PLAIN_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}" +
  "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}" +
  "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token }}{% if not loop.last %}{{ '\\n\\n' }}{% endif %}" +
  "{% else %}{{ raise_exception('plain template: a role must be system, user or assistant, got ' + message['role']) }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}";

const PLAIN_DESCRIPTION = 'plain template (Alpaca style, the tokenizer has no chat_template): "### Instruction:\\n{user}\\n\\n### Response:\\n{assistant}<eos>"';

/** What foreignEvalTokenizer reads; all but `tokenizer` optional. */
export interface ForeignTokenizerFiles {
  /** tokenizer.json content. */
  tokenizer: unknown;
  /** Content hash of tokenizer.json (LoadedCheckpoint.tokenizerHash). */
  tokenizerHash: string;
  /** tokenizer_config.json content. */
  tokenizerConfig?: Record<string, unknown>;
  /** generation_config.json content (its eos_token_id, a number or a list, adds stop ids). */
  generationConfig?: Record<string, unknown>;
  /** chat_template.jinja's text (newer transformers save the template there), used when tokenizer_config.json has none. */
  chatTemplateFile?: string;
  /** The folder, for error messages. */
  source: string;
  /** Where the chat template came from, for the description, when not a file of `source` (a GGUF file's "tokenizer.chat_template metadata"). */
  templateFrom?: string;
}

const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

function checkTurns(turns: readonly Turn[]): void {
  if (!Array.isArray(turns) || turns.length === 0) throw new TypeError('chat: turns: expected a non-empty array of turns');
  turns.forEach((turn, i) => {
    if (!ROLES.includes(turn?.role)) throw new TypeError(`chat: turns[${i}].role: expected one of ${ROLES.join(', ')}, got ${JSON.stringify(turn?.role)}`);
    if (typeof turn.content !== 'string') throw new TypeError(`chat: turns[${i}].content: expected a string, got ${typeof turn.content}`);
  });
}

/** A special-token field of tokenizer_config.json: a string, an AddedToken object {content}, or null. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

/** The chat template text and where it came from, or undefined when there is none. */
export function chatTemplateOf(config: Record<string, unknown> | undefined, templateFile: string | undefined, source: string): { text: string; from: string } | undefined {
  const t = config?.chat_template;
  if (typeof t === 'string' && t !== '') return { text: t, from: 'tokenizer_config.json' };
  if (Array.isArray(t)) {
    // transformers' named templates: [{name, template}], "default" used for chat.
    const named = t as Array<{ name?: unknown; template?: unknown }>;
    const pick = named.find((x) => x?.name === 'default') ?? named[0];
    if (typeof pick?.template !== 'string') throw new Error(`${source}/tokenizer_config.json: chat_template: expected a string or a list of {name, template}`);
    return { text: pick.template, from: `tokenizer_config.json (template "${String(pick.name ?? 'default')}")` };
  }
  if (t !== undefined && t !== null) throw new Error(`${source}/tokenizer_config.json: chat_template: expected a string or a list of {name, template}, got ${typeof t}`);
  if (templateFile !== undefined && templateFile !== '') return { text: templateFile, from: 'chat_template.jinja' };
  return undefined;
}

/** Byte-level pre-tokenizer or decoder anywhere in tokenizer.json (GPT-2 style vocabularies: one vocab character per byte). */
function isByteLevel(json: unknown): boolean {
  const seen = (node: unknown): boolean => {
    if (node === null || typeof node !== 'object') return false;
    const n = node as Record<string, unknown>;
    if (n.type === 'ByteLevel') return true;
    for (const key of ['pretokenizers', 'decoders']) if (Array.isArray(n[key]) && (n[key] as unknown[]).some(seen)) return true;
    return false;
  };
  const root = json as Record<string, unknown>;
  return seen(root.pre_tokenizer) || seen(root.decoder);
}

/**
 * Version of foreignEvalTokenizer's scoring rule, part of its cache key: 2 = whole-text
 * tokenization of prompt + suffix and text-based bytes (1, unnamed: prompt and suffix tokenized
 * separately, bytes summed from token texts). Our own tokenizer's key does not include it.
 */
export const FOREIGN_SCORING_RULE = 2;

/**
 * Any Hugging Face tokenizer.json with its chat template, as an EvalTokenizer.
 *
 * Loss mask of a conversation (encodeChat): only the final assistant turn is scored (earlier
 * assistant turns are context; turns after it are dropped). The prompt (every turn before it,
 * rendered with add_generation_prompt=true) and the conversation up to and including it
 * (add_generation_prompt=false) are rendered; the conversation's text must start with the
 * prompt's text, else an error names the template (some templates rewrite earlier turns). The
 * scored part is the rest (the suffix: the answer, the template's end-of-turn text, and any text
 * the template puts between the generation prompt and the answer).
 *
 * Tokenization is whole-text: the prompt ids are P = lead + tokens(promptText) (exactly
 * encodePrompt's ids, which generation continues from) and the conversation's ids are
 * W = lead + tokens(promptText + suffix), both without special tokens added (lead: the
 * tokenizer's BOS for the plain template, nothing for a chat template, which writes its own).
 * When P is a prefix of W (the usual case), the ids are W and the scored tokens are W after P:
 * exactly the tokens of the whole rendered conversation that a model continuing from the prompt
 * ids has to produce (in particular a SentencePiece tokenizer's dummy-prefix "▁", which
 * Metaspace/Prepend adds at the start of each encoded text, is not put in front of the answer,
 * and a template's space between the prompt and the answer stays in the answer's first token
 * as in the whole text). When P is not a prefix of W (a token of W straddles the end of the
 * prompt, e.g. a merge across it, or a generation prompt ending in a space that SentencePiece
 * joins to the answer's first word), no tokenization of the whole text continues P; then, in
 * order: (2) when P followed by tokens(suffix) (the suffix tokenized on its own) decodes to the
 * same text as W, those are the ids: the context is exactly what generation sees and the scored
 * tokens a tokenization of the suffix (byte-level BPE without add_prefix_space always lands
 * here); (3) otherwise (tokens(suffix) would add a dummy-prefix "▁", i.e. a space the text does
 * not have), the ids are W and the scored tokens W after the longest common prefix of P and W
 * (at least position 1): the context is then shorter than encodePrompt's ids and the scored
 * tokens also cover the end of the prompt's text, whose bytes (tokenByteLength of P's
 * remaining tokens) are added to responseBytes. In every case the scored tokens, after the
 * context, decode to the conversation's text. Trailing whitespace
 * after the last stop token of the scored tokens (ChatML's newline after <|im_end|>) is dropped:
 * generation stops before it.
 *
 * Bytes: responseBytes is the UTF-8 length of the scored text (the suffix, without that dropped
 * whitespace) with the special tokens' text removed (they count 0): exactly the answer's bytes
 * for a template that writes the answer verbatim followed by a special end-of-turn token;
 * template text in the suffix counts too. tokenBytes spreads it over the scored tokens:
 * tokenByteLength of each (exact for byte-level vocabularies; for others read from the token's
 * text: SentencePiece's "▁" as a space, "<0xNN>" as one byte, WordPiece's "##" dropped), any
 * surplus (a dummy-prefix "▁", an <unk>) taken off the first scored tokens and any shortfall
 * added to the first non-special one, so the tokens sum to responseBytes. textTokenBytes does
 * the same for plain text against the text's UTF-8 length.
 *
 * Cache key: the tokenizer's hash, the template, BOS/EOS, lead and stop ids, and the version of
 * this scoring rule (FOREIGN_SCORING_RULE), so results scored under an older rule are not reused.
 *
 * Throws naming `files.source` when the library cannot load tokenizer.json.
 */
export function foreignEvalTokenizer(files: ForeignTokenizerFiles): EvalTokenizer {
  const { source } = files;
  const config = files.tokenizerConfig ?? {};
  let hf: Tokenizer;
  try {
    hf = new Tokenizer(files.tokenizer as object, config);
  } catch (err) {
    throw new Error(`${source}/tokenizer.json: @huggingface/tokenizers cannot load it: ${(err as Error).message}`);
  }
  const found = chatTemplateOf(files.tokenizerConfig, files.chatTemplateFile, source);
  const templateText = found?.text ?? PLAIN_TEMPLATE;
  const description = found ? `chat template from ${files.templateFrom ?? found.from} (sha256 ${stableHash(found.text).slice(0, 12)})` : PLAIN_DESCRIPTION;
  let template: Template;
  try {
    template = new Template(templateText);
  } catch (err) {
    throw new Error(`${source}: ${description}: cannot parse: ${(err as Error).message}`);
  }
  const bos = tokenText(config.bos_token);
  const eos = tokenText(config.eos_token);
  const idOf = (token: string | undefined): number | undefined => (token === undefined ? undefined : hf.token_to_id(token));

  const vocab = hf.get_vocab(true);
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);
  const special = new Set<number>();
  for (const [id, added] of hf.get_added_tokens_decoder()) if (added.special) special.add(id);
  const addedText = new Map<number, string>();
  for (const [id, added] of hf.get_added_tokens_decoder()) addedText.set(id, added.content);

  // Leading special ids the tokenizer adds to a text (BOS): what the post-processor adds before
  // the text's own tokens, unless tokenizer_config.json's add_bos_token says otherwise.
  let lead: number[];
  const probeWith: number[] = hf.encode('a', { add_special_tokens: true }).ids;
  const probeWithout: number[] = hf.encode('a', { add_special_tokens: false }).ids;
  const at = probeWith.findIndex((_: number, i: number) => probeWithout.every((id: number, j: number) => probeWith[i + j] === id));
  lead = at > 0 ? probeWith.slice(0, at) : [];
  if (config.add_bos_token === false) lead = [];
  else if (config.add_bos_token === true && lead.length === 0 && idOf(bos) !== undefined) lead = [idOf(bos)!];

  const render = (turns: readonly Turn[], addGenerationPrompt: boolean): string => {
    try {
      return template.render({
        messages: turns.map((t) => ({ role: t.role, content: t.content })),
        add_generation_prompt: addGenerationPrompt,
        bos_token: bos ?? '',
        eos_token: eos ?? '',
        unk_token: tokenText(config.unk_token) ?? '',
        pad_token: tokenText(config.pad_token) ?? '',
      });
    } catch (err) {
      throw new Error(`${source}: ${description}: rendering failed: ${(err as Error).message}`);
    }
  };
  const encodeRaw = (text: string): number[] => (text === '' ? [] : hf.encode(text, { add_special_tokens: false }).ids);
  // Plain template: the tokenizer's own BOS first (a chat template writes bos_token itself).
  const prefixIds = found ? [] : lead;

  const stop = new Set<number>();
  const eosId = idOf(eos);
  if (eosId !== undefined) stop.add(eosId);
  const genEos = files.generationConfig?.eos_token_id;
  for (const id of Array.isArray(genEos) ? genEos : [genEos]) if (Number.isInteger(id) && (id as number) >= 0 && (id as number) < vocabSize) stop.add(id as number);

  const split = (turns: Turn[]): { promptText: string; suffix: string } => {
    const last = turns.map((t) => t.role).lastIndexOf('assistant');
    const promptText = render(turns.slice(0, last), true);
    const fullText = render(turns.slice(0, last + 1), false);
    if (!fullText.startsWith(promptText)) {
      let i = 0;
      while (i < promptText.length && promptText[i] === fullText[i]) i++;
      throw new Error(
        `${source}: ${description}: the rendered conversation does not start with the rendered prompt (add_generation_prompt=true), so the answer's tokens cannot be told apart; ` +
          `they differ at character ${i}: prompt has ${JSON.stringify(promptText.slice(i, i + 40))}, conversation ${JSON.stringify(fullText.slice(i, i + 40))}`,
      );
    }
    return { promptText, suffix: fullText.slice(promptText.length) };
  };

  // The template's end-of-turn token: the last special token of a short answer's suffix
  // (ChatML's <|im_end|>, Zephyr's </s>); generation stops at it too.
  try {
    const probe = encodeRaw(split([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }]).suffix);
    const last = [...probe].reverse().find((id) => special.has(id));
    if (last !== undefined) stop.add(last);
  } catch {
    // A template that refuses the probe (e.g. requires a system turn): stop ids from eos only.
  }
  if (stop.size === 0) throw new Error(`${source}: no stop token: tokenizer_config.json has no eos_token known to tokenizer.json, generation_config.json no eos_token_id, and ${description} ends an answer with no special token`);
  const stopIds = [...stop];

  const byteLevel = isByteLevel(files.tokenizer);
  const utf8 = new TextEncoder();
  const bytesCache = new Map<number, number>();
  const tokenByteLength = (id: number): number => {
    let n = bytesCache.get(id);
    if (n !== undefined) return n;
    if (special.has(id)) n = 0;
    else if (addedText.has(id)) n = utf8.encode(addedText.get(id)!).length;
    else {
      const piece = hf.id_to_token(id);
      if (piece === undefined) throw new RangeError(`${source}/tokenizer.json: token id ${id} is not in the vocabulary (size ${vocabSize})`);
      if (byteLevel) n = [...piece].length;
      else if (/^<0x[0-9A-Fa-f]{2}>$/.test(piece)) n = 1;
      else n = utf8.encode(piece.replace(/▁/g, ' ').replace(/^##/, '')).length;
    }
    bytesCache.set(id, n);
    return n;
  };
  // Special tokens' text, longest first, to remove from a text before counting its bytes.
  const specialTexts = [...special].map((id) => addedText.get(id)!).filter((t) => t !== undefined && t !== '').sort((a, b) => b.length - a.length);
  const textBytesWithoutSpecial = (text: string): number => {
    let t = text;
    for (const c of specialTexts) t = t.split(c).join('');
    return utf8.encode(t).length;
  };
  // Per position of `ids`: 0 before `from`, tokenByteLength from `from` on, corrected so the
  // positions from `from` sum to `total` (surplus off the first tokens, shortfall onto the first
  // non-special one).
  const spreadBytes = (ids: readonly number[], from: number, total: number): number[] => {
    const b = ids.map((id, t) => (t < from ? 0 : tokenByteLength(id)));
    let surplus = b.reduce((x, y) => x + y, 0) - total;
    for (let t = from; t < b.length && surplus > 0; t++) {
      const take = Math.min(b[t]!, surplus);
      b[t]! -= take;
      surplus -= take;
    }
    if (surplus < 0 && from < b.length) {
      let t = from;
      while (t < b.length - 1 && special.has(ids[t]!)) t++;
      b[t]! -= surplus;
    }
    return b;
  };

  return {
    description,
    key: stableHash({ tokenizer: files.tokenizerHash, template: templateText, lead, stopIds, bos: bos ?? null, eos: eos ?? null, scoringRule: FOREIGN_SCORING_RULE }),
    vocabSize,
    stopIds,
    encodeChat(turns) {
      checkTurns(turns);
      if (!turns.some((t) => t.role === 'assistant')) {
        const ids = [...prefixIds, ...encodeRaw(render(turns, false))];
        return { ids, lossMask: new Uint8Array(ids.length), trimmed: false, responseBytes: 0 };
      }
      const { promptText, suffix } = split(turns);
      const promptIds = [...prefixIds, ...encodeRaw(promptText)];
      const wholeIds = [...prefixIds, ...encodeRaw(promptText + suffix)];
      let contextIds = promptIds;
      let suffixIds: number[];
      let extraBytes = 0; // bytes of prompt text the scored tokens cover (rule 3 only)
      if (promptIds.every((id, i) => wholeIds[i] === id)) suffixIds = wholeIds.slice(promptIds.length);
      else {
        const alone = encodeRaw(suffix);
        if (hf.decode([...promptIds, ...alone]) === hf.decode(wholeIds)) suffixIds = alone;
        else {
          let k = 0;
          while (k < promptIds.length && promptIds[k] === wholeIds[k]) k++;
          k = Math.max(k, Math.min(1, promptIds.length));
          contextIds = wholeIds.slice(0, k);
          suffixIds = wholeIds.slice(k);
          for (const id of promptIds.slice(k)) extraBytes += tokenByteLength(id);
        }
      }
      let scoredText = suffix;
      let lastStop = -1;
      suffixIds.forEach((id, i) => {
        if (stop.has(id)) lastStop = i;
      });
      if (lastStop >= 0 && lastStop < suffixIds.length - 1 && hf.decode(suffixIds.slice(lastStop + 1)).trim() === '') {
        suffixIds = suffixIds.slice(0, lastStop + 1);
        scoredText = suffix.trimEnd();
      }
      const ids = [...contextIds, ...suffixIds];
      const lossMask = new Uint8Array(ids.length);
      for (let t = Math.max(1, contextIds.length); t < ids.length; t++) lossMask[t] = 1;
      const tokenBytes = spreadBytes(ids, contextIds.length, textBytesWithoutSpecial(scoredText) + extraBytes);
      if (contextIds.length === 0 && tokenBytes.length > 0) tokenBytes[0] = 0; // position 0 is never scored
      const responseBytes = tokenBytes.reduce((x, y) => x + y, 0);
      return { ids, lossMask, trimmed: false, responseBytes, tokenBytes };
    },
    encodePrompt(turns) {
      checkTurns(turns);
      const last = turns[turns.length - 1]!;
      if (last.role !== 'user') throw new TypeError(`chat: turns[${turns.length - 1}].role: a prompt must end with a user turn, got ${JSON.stringify(last.role)}`);
      return [...prefixIds, ...encodeRaw(render(turns, true))];
    },
    encodeText: (text) => [...lead, ...encodeRaw(text)],
    textTokenBytes: (text, ids) => spreadBytes(ids, Math.min(lead.length, ids.length), textBytesWithoutSpecial(text)),
    decode: (ids, options = {}) => (ids.length === 0 ? '' : hf.decode([...ids], { skip_special_tokens: options.skipSpecial ?? false })),
    tokenByteLength,
  };
}

/** Checkpoints' chat formats grouped by description (metrics.json's chatFormat), in first-epoch order. */
export function groupChatFormats(formats: ReadonlyArray<{ epoch: number; description: string }>): Array<{ description: string; epochs: number[] }> {
  const groups = new Map<string, number[]>();
  for (const f of formats) {
    const epochs = groups.get(f.description) ?? [];
    epochs.push(f.epoch);
    groups.set(f.description, epochs);
  }
  return [...groups].map(([description, epochs]) => ({ description, epochs }));
}

/**
 * The text of generated `ids` as they read after the prompt `promptIds`: decode(prompt + ids)
 * with the decoded prompt removed from its front, as transformers' TextStreamer prints a
 * continuation. Decoding the new ids alone would lose what depends on the tokens before them: a
 * SentencePiece decoder drops the leading space of the first piece ("▁upon" after "Once" reads
 * " upon", alone "upon"). When the decoded prompt is not a prefix of the whole (a normalizer or a
 * byte sequence cut at the prompt's end), the new ids are decoded alone. For our byte-level
 * tokenizer both are the same text (decoding is per token bytes, flushed at special tokens).
 */
export function decodeContinuation(tok: Pick<EvalTokenizer, 'decode'>, promptIds: readonly number[], ids: readonly number[], options: { skipSpecial?: boolean } = {}): string {
  if (ids.length === 0) return '';
  const prompt = tok.decode(promptIds, options);
  const whole = tok.decode([...promptIds, ...ids], options);
  return whole.startsWith(prompt) ? whole.slice(prompt.length) : tok.decode(ids, options);
}
