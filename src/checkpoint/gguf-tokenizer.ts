// A GGUF file's tokenizer (tokenizer.ggml.*) as the equivalent Hugging Face tokenizer.json, the
// way transformers builds it when it loads a GGUF (transformers/integrations/ggml.py:
// GGUFTokenizerSkeleton + GGUFLlamaConverter, on convert_slow_tokenizer.LlamaConverter's legacy
// normalizer). Only `tokenizer.ggml.model == "llama"` (SentencePiece BPE with scores) is read:
//   model      BPE over the GGUF token list (id = position), byte_fallback, fuse_unk, unk_token;
//              merges generated from the vocabulary and scores (every split of a token into two
//              tokens, ranked by the merged token's score, highest first; ties in vocabulary
//              order, then by the pieces' scores), exactly transformers' on-the-fly merges;
//   normalizer Prepend("▁") (when tokenizer.ggml.add_space_prefix, default true) + Replace(" ", "▁");
//   decoder    ByteFallback, Fuse, Replace("▁", " "), Strip one leading space (when add_space_prefix);
//   added_tokens  every token of type 3 (CONTROL: <unk>, <s>, </s>, ...) as a special token;
//   post_processor  TemplateProcessing "<bos> $A" when tokenizer.ggml.add_bos_token (default true,
//              as llama.cpp and transformers' LlamaTokenizerFast), plus " <eos>" when add_eos_token.
// So `encode(text)` adds BOS; `encode(text, {add_special_tokens: false})` gives llama.cpp's
// `llama_tokenize(text, add_special=false, parse_special=false)` ids.
// Differences from transformers, deliberate: its GGUF converter sets both bos and eos to the BOS
// token's string (a bug in ggml.py: `eos_token = proto.tokens[proto.bos_token_id]`); here each is
// its own id. USER_DEFINED tokens (type 4) are not added tokens (transformers does not add them either).
import type { GgufValue } from './gguf.ts';

/** SentencePiece token types as GGUF stores them (llama.cpp's llama_token_type). */
export const GgufTokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

interface SpmVocab {
  tokens: string[];
  scores: number[];
  types: number[] | undefined;
  bos: number | undefined;
  eos: number | undefined;
  unk: number | undefined;
  pad: number | undefined;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
}

function readSpmVocab(metadata: Map<string, GgufValue>, file: string): SpmVocab {
  const model = metadata.get('tokenizer.ggml.model');
  if (model === undefined) throw new Error(`${file}: metadata tokenizer.ggml.model is missing (the file carries no tokenizer)`);
  if (model !== 'llama') {
    throw new Error(`${file}: metadata tokenizer.ggml.model is ${JSON.stringify(model)}; only "llama" (SentencePiece) tokenizers are supported`);
  }
  const tokens = metadata.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.length === 0 || tokens.some((t) => typeof t !== 'string')) {
    throw new Error(`${file}: metadata tokenizer.ggml.tokens must be a non-empty array of strings`);
  }
  const scores = metadata.get('tokenizer.ggml.scores');
  if (!Array.isArray(scores) || scores.length !== tokens.length || scores.some((s) => typeof s !== 'number')) {
    throw new Error(`${file}: metadata tokenizer.ggml.scores must be an array of ${tokens.length} numbers (one per token)`);
  }
  const types = metadata.get('tokenizer.ggml.token_type');
  if (types !== undefined && (!Array.isArray(types) || types.length !== tokens.length || types.some((t) => typeof t !== 'number'))) {
    throw new Error(`${file}: metadata tokenizer.ggml.token_type must be an array of ${tokens.length} integers (one per token)`);
  }
  const merges = metadata.get('tokenizer.ggml.merges');
  if (merges !== undefined && Array.isArray(merges) && merges.length > 0) {
    throw new Error(`${file}: metadata tokenizer.ggml.merges is present in a "llama" tokenizer; not supported`);
  }
  // An id >= the vocabulary (llama.cpp writes 0xFFFFFFFF for "none") means absent.
  const id = (key: string): number | undefined => {
    const v = metadata.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${file}: metadata ${key} must be a token id, got ${String(v)}`);
    return v < tokens.length ? v : undefined;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = metadata.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new Error(`${file}: metadata ${key} must be a bool, got ${String(v)}`);
    return v;
  };
  return {
    tokens: tokens as string[],
    scores: scores as number[],
    types: types as number[] | undefined,
    bos: id('tokenizer.ggml.bos_token_id'),
    eos: id('tokenizer.ggml.eos_token_id'),
    unk: id('tokenizer.ggml.unknown_token_id'),
    pad: id('tokenizer.ggml.padding_token_id'),
    addBos: bool('tokenizer.ggml.add_bos_token', true),
    addEos: bool('tokenizer.ggml.add_eos_token', false),
    addSpacePrefix: bool('tokenizer.ggml.add_space_prefix', true),
  };
}

/**
 * BPE merges from a SentencePiece vocabulary and scores, as transformers' GGUFTokenizerSkeleton
 * builds them: for every token (vocabulary order, first occurrence of a duplicate, with its last
 * score), every split into two pieces (at code-point boundaries) that are both tokens; each
 * token's splits sorted by (score of left, score of right) descending; then all sorted by the
 * merged token's score descending. Sorts are stable. Returns [left, right] pairs, rank = index.
 */
export function spmMerges(tokens: string[], scores: number[]): Array<[string, string]> {
  const score = new Map<string, number>();
  for (let i = 0; i < tokens.length; i++) score.set(tokens[i]!, scores[i]!);
  const all: Array<{ l: string; r: string; s: number }> = [];
  for (const [piece, pieceScore] of score) {
    const chars = Array.from(piece);
    const local: Array<{ l: string; r: string; s: number }> = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (score.has(l) && score.has(r)) local.push({ l, r, s: pieceScore });
    }
    local.sort((a, b) => score.get(b.l)! - score.get(a.l)! || score.get(b.r)! - score.get(a.r)!);
    all.push(...local);
  }
  all.sort((a, b) => b.s - a.s);
  return all.map((m) => [m.l, m.r]);
}

/**
 * The Hugging Face tokenizer.json object (a plain JSON value) equivalent to a GGUF file's llama
 * (SentencePiece) tokenizer; see the file comment for what it holds. Throws naming `file` and the
 * metadata key for a missing or malformed tokenizer, or a tokenizer model other than "llama".
 */
export function ggufToTokenizerJson(metadata: Map<string, GgufValue>, file: string): Record<string, unknown> {
  return tokenizerJsonOf(readSpmVocab(metadata, file), file);
}

function tokenizerJsonOf(v: SpmVocab, file: string): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, i) => {
    vocab[t] = i;
  });
  const special: number[] = [];
  if (v.types) {
    v.types.forEach((t, i) => {
      if (t === GgufTokenType.CONTROL) special.push(i);
    });
  } else {
    for (const i of [v.unk, v.bos, v.eos]) if (i !== undefined && !special.includes(i)) special.push(i);
  }
  const addedTokens = special.map((i) => ({
    id: i,
    content: v.tokens[i]!,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const normalizers: unknown[] = [];
  if (v.addSpacePrefix) normalizers.push({ type: 'Prepend', prepend: '▁' });
  normalizers.push({ type: 'Replace', pattern: { String: ' ' }, content: '▁' });
  const decoders: unknown[] = [
    { type: 'ByteFallback' },
    { type: 'Fuse' },
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
  ];
  if (v.addSpacePrefix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'Sequence', normalizers },
    pre_tokenizer: null,
    post_processor: postProcessor(v, file),
    decoder: { type: 'Sequence', decoders },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: v.unk === undefined ? null : v.tokens[v.unk],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: spmMerges(v.tokens, v.scores),
    },
  };
}

/** LlamaTokenizerFast.update_post_processor's TemplateProcessing, or null when it adds nothing. */
function postProcessor(v: SpmVocab, file: string): unknown {
  if (!v.addBos && !v.addEos) return null;
  const tok = (id: number | undefined, key: string) => {
    if (id === undefined) throw new Error(`${file}: metadata tokenizer.ggml.${key}_token_id is missing but tokenizer.ggml.add_${key}_token is true`);
    return v.tokens[id]!;
  };
  const bos = v.addBos ? tok(v.bos, 'bos') : undefined;
  const eos = v.addEos ? tok(v.eos, 'eos') : undefined;
  const seq = (typeId: number, name: 'A' | 'B') => [
    ...(bos !== undefined ? [{ SpecialToken: { id: bos, type_id: typeId } }] : []),
    { Sequence: { id: name, type_id: typeId } },
    ...(eos !== undefined ? [{ SpecialToken: { id: eos, type_id: typeId } }] : []),
  ];
  const specials: Record<string, unknown> = {};
  if (bos !== undefined) specials[bos] = { id: bos, ids: [v.bos], tokens: [bos] };
  if (eos !== undefined) specials[eos] = { id: eos, ids: [v.eos], tokens: [eos] };
  return { type: 'TemplateProcessing', single: seq(0, 'A'), pair: [...seq(0, 'A'), ...seq(1, 'B')], special_tokens: specials };
}

/**
 * A tokenizer_config.json-like object from GGUF metadata: bos/eos/unk/pad token strings (when
 * their ids are present), add_bos_token, add_eos_token, add_prefix_space, and chat_template
 * (tokenizer.chat_template) when the file has one; tokenizer_class "LlamaTokenizerFast".
 * Throws as ggufToTokenizerJson does.
 */
export function ggufTokenizerConfig(metadata: Map<string, GgufValue>, file: string): Record<string, unknown> {
  return tokenizerConfigOf(readSpmVocab(metadata, file), metadata, file);
}

/**
 * A GGUF file's tokenizer read once: `json` as ggufToTokenizerJson, `config` as
 * ggufTokenizerConfig, `vocabSize` the number of tokens (tokenizer.ggml.tokens). Throws as they do.
 */
export function ggufTokenizer(metadata: Map<string, GgufValue>, file: string): { json: Record<string, unknown>; config: Record<string, unknown>; vocabSize: number } {
  const v = readSpmVocab(metadata, file);
  return { json: tokenizerJsonOf(v, file), config: tokenizerConfigOf(v, metadata, file), vocabSize: v.tokens.length };
}

function tokenizerConfigOf(v: SpmVocab, metadata: Map<string, GgufValue>, file: string): Record<string, unknown> {
  const out: Record<string, unknown> = { tokenizer_class: 'LlamaTokenizerFast' };
  if (v.bos !== undefined) out.bos_token = v.tokens[v.bos];
  if (v.eos !== undefined) out.eos_token = v.tokens[v.eos];
  if (v.unk !== undefined) out.unk_token = v.tokens[v.unk];
  if (v.pad !== undefined) out.pad_token = v.tokens[v.pad];
  out.add_bos_token = v.addBos;
  out.add_eos_token = v.addEos;
  out.add_prefix_space = v.addSpacePrefix;
  const template = metadata.get('tokenizer.chat_template');
  if (template !== undefined) {
    if (typeof template !== 'string') throw new Error(`${file}: metadata tokenizer.chat_template must be a string`);
    out.chat_template = template;
  }
  return out;
}
