// Byte-level BPE (GPT-2 style), trained on our own data, saved as a Hugging Face tokenizer.json.
//
// Ids: the 5 special tokens are 0..4, the 256 byte tokens are 5..260 (byte b -> 5 + b), and
// learned merges follow from 261. Text is split with the GPT-2 regex, each piece is UTF-8
// encoded and its bytes are shown through GPT-2's bytes_to_unicode table (so "Ġ" is a space in
// the vocab), and merges are applied inside a piece only, never across pieces.
//
// Lossless: every UTF-8 byte has a token, so decode(encode(s)) === s for every well-formed JS
// string. A string with lone surrogates (not valid Unicode) is encoded as TextEncoder does it:
// each lone surrogate becomes U+FFFD (bytes EF BF BD), so it decodes to "\uFFFD" in its place
// and nothing throws. Decoding any id sequence never throws on bytes either: an id sequence that
// cuts a multi-byte character decodes the broken bytes to U+FFFD.
//
// Differences from HF `tokenizers` loading the same file, known and accepted: HF splits the
// special tokens out of raw text (we never do: "<|eot|>" in text stays bytes), and its regex
// engine's \s / \p{..} classes may differ from JS's on rare code points.

export const SPECIAL_TOKENS = ['<|pad|>', '<|eot|>', '<|system|>', '<|user|>', '<|assistant|>'] as const;
export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

export interface SpecialIds {
  pad: number;
  eot: number;
  system: number;
  user: number;
  assistant: number;
}

export interface DecodeOptions {
  /** Drop special tokens instead of writing their literal text. */
  skipSpecial?: boolean;
}

export class TokenizerFormatError extends Error {
  override name = 'TokenizerFormatError';
}

/** GPT-2's pre-tokenisation pattern (contractions, letters, numbers, other, whitespace). */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const SPECIAL_COUNT = SPECIAL_TOKENS.length;
const BYTE_BASE = SPECIAL_COUNT;
const FIRST_MERGE_ID = BYTE_BASE + 256;

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100.. so no token has spaces or control characters. */
function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  const printable = new Set<number>();
  for (let b = 0x21; b <= 0x7e; b++) printable.add(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.add(b);
  for (let b = 0xae; b <= 0xff; b++) printable.add(b);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable.has(b) ? b : 256 + extra++);
  return table;
}

export const BYTE_TO_UNICODE: readonly string[] = bytesToUnicode();
const UNICODE_TO_BYTE = new Map<string, number>(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

/** Splits text into GPT-2 pieces; any stretch the regex skipped (it should not) is kept as its own piece so nothing is lost. */
export function pretokenize(text: string): string[] {
  const pieces: string[] = [];
  let covered = 0;
  for (const match of text.matchAll(GPT2_SPLIT)) {
    const start = match.index ?? 0;
    if (start > covered) pieces.push(text.slice(covered, start));
    pieces.push(match[0]);
    covered = start + match[0].length;
  }
  if (covered < text.length) pieces.push(text.slice(covered));
  return pieces;
}

function byteLevelString(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_UNICODE[b];
  return s;
}

/** Smallest power of two >= n, so pair keys a * shift + b stay small integers. */
function pairShift(vocabSize: number): number {
  let shift = 1;
  while (shift < vocabSize) shift *= 2;
  return shift;
}

/** Min-heap over numbers (used for encode: key = rank * 2^32 + position). */
class NumberHeap {
  private items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent] <= value) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = value;
  }
  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      let i = 0;
      const n = items.length;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= n) break;
        const right = left + 1;
        const child = right < n && items[right] < items[left] ? right : left;
        if (items[child] >= last) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}

interface PairEntry {
  count: number;
  key: number;
}

/** Max-heap of pair counts for training; `before(x, y)` says x should come out first. */
class PairHeap {
  private items: PairEntry[] = [];
  constructor(private readonly before: (x: PairEntry, y: PairEntry) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(entry: PairEntry): void {
    const items = this.items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(entry, items[parent])) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = entry;
  }
  pop(): PairEntry {
    const items = this.items;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      let i = 0;
      const n = items.length;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= n) break;
        const right = left + 1;
        const child = right < n && this.before(items[right], items[left]) ? right : left;
        if (!this.before(items[child], last)) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}

const MAX_CACHE_WORDS = 200_000;

export class BpeTokenizer {
  readonly vocabSize: number;
  readonly special: SpecialIds;
  /** Token strings in byte-level form ("Ġthe"), by id; specials are their literal text. */
  private readonly tokens: string[];
  /** Raw bytes of each token by id (empty for specials). */
  private readonly tokenBytes: Uint8Array[];
  /** Merge list in rank order, as [leftId, rightId]. */
  private readonly merges: [number, number][];
  private readonly byteIds: Int32Array;
  private readonly shift: number;
  /** (left * shift + right) -> rank; the merged id is mergedIds[rank]. */
  private readonly mergeRank: Map<number, number>;
  private readonly mergedIds: Int32Array;
  private readonly cache = new Map<string, number[]>();

  private constructor(tokens: string[], merges: [number, number][]) {
    this.tokens = tokens;
    this.vocabSize = tokens.length;
    this.merges = merges;
    this.special = { pad: 0, eot: 1, system: 2, user: 3, assistant: 4 };
    const ids = new Map<string, number>();
    tokens.forEach((t, id) => {
      if (id >= SPECIAL_COUNT) ids.set(t, id);
    });
    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) this.byteIds[b] = ids.get(BYTE_TO_UNICODE[b])!;
    this.tokenBytes = tokens.map((t, id) => {
      if (id < SPECIAL_COUNT) return new Uint8Array(0);
      const bytes = new Uint8Array(t.length);
      for (let i = 0; i < t.length; i++) bytes[i] = UNICODE_TO_BYTE.get(t[i])!;
      return bytes;
    });
    this.shift = pairShift(this.vocabSize);
    this.mergeRank = new Map();
    this.mergedIds = new Int32Array(merges.length);
    merges.forEach(([a, b], rank) => {
      const key = a * this.shift + b;
      // A duplicate merge can never fire after the first one; keep the first (as HF does).
      if (!this.mergeRank.has(key)) this.mergeRank.set(key, rank);
      this.mergedIds[rank] = ids.get(tokens[a] + tokens[b])!;
    });
  }

  /**
   * Learns merges from `texts` until the vocabulary (specials + 256 bytes + merges) reaches
   * `vocabSize` or no adjacent pair occurs at least twice. Ties in pair count go to the pair whose
   * tokens sort first (left token, then right token, compared as byte-level strings), so the result
   * depends only on the input.
   */
  static train(texts: Iterable<string>, vocabSize: number): BpeTokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize < FIRST_MERGE_ID) {
      throw new RangeError(`tokenizer vocabSize: must be an integer >= ${FIRST_MERGE_ID} (5 special + 256 byte tokens), got ${vocabSize}`);
    }
    const tokens: string[] = [...SPECIAL_TOKENS, ...BYTE_TO_UNICODE];
    const idOf = new Map<string, number>();
    tokens.forEach((t, id) => {
      if (id >= SPECIAL_COUNT) idOf.set(t, id);
    });

    // Distinct pieces with their counts; BPE only needs each distinct piece once.
    const pieceCounts = new Map<string, number>();
    for (const text of texts) {
      for (const piece of pretokenize(text)) pieceCounts.set(piece, (pieceCounts.get(piece) ?? 0) + 1);
    }
    // Sorted so word order (and so everything downstream) is independent of Map insertion order.
    const pieces = [...pieceCounts.keys()].sort();
    const words: Int32Array[] = [];
    const wordCounts: number[] = [];
    for (const piece of pieces) {
      const bytes = utf8Encoder.encode(piece);
      const word = new Int32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) word[i] = BYTE_BASE + bytes[i];
      words.push(word);
      wordCounts.push(pieceCounts.get(piece)!);
    }
    pieceCounts.clear();

    const shift = pairShift(vocabSize);
    const pairCounts = new Map<number, number>();
    // pair -> words that contain (or once contained) it; stale entries are skipped on use.
    const pairWords = new Map<number, number[]>();
    for (let w = 0; w < words.length; w++) {
      const word = words[w];
      for (let i = 0; i + 1 < word.length; i++) {
        const key = word[i] * shift + word[i + 1];
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + wordCounts[w]);
        const list = pairWords.get(key);
        if (!list) pairWords.set(key, [w]);
        else if (list[list.length - 1] !== w) list.push(w);
      }
    }

    const before = (x: PairEntry, y: PairEntry): boolean => {
      if (x.count !== y.count) return x.count > y.count;
      const xl = tokens[Math.floor(x.key / shift)];
      const yl = tokens[Math.floor(y.key / shift)];
      if (xl !== yl) return xl < yl;
      return tokens[x.key % shift] < tokens[y.key % shift];
    };
    const heap = new PairHeap(before);
    for (const [key, count] of pairCounts) heap.push({ key, count });

    const merges: [number, number][] = [];
    const delta = new Map<number, number>();
    while (tokens.length < vocabSize && heap.size > 0) {
      const top = heap.pop();
      const current = pairCounts.get(top.key) ?? 0;
      if (current !== top.count) {
        // Stale entry (the count dropped since it was pushed): requeue at its true count.
        if (current > 0) heap.push({ key: top.key, count: current });
        continue;
      }
      if (current < 2) break;
      const a = Math.floor(top.key / shift);
      const b = top.key % shift;
      const merged = tokens[a] + tokens[b];
      // Different merge paths can spell the same token (a+bc, ab+c): reuse its id, as HF does.
      let c = idOf.get(merged);
      if (c === undefined) {
        c = tokens.length;
        tokens.push(merged);
        idOf.set(merged, c);
      }
      merges.push([a, b]);

      delta.clear();
      const add = (x: number, y: number, amount: number, w: number): void => {
        const key = x * shift + y;
        delta.set(key, (delta.get(key) ?? 0) + amount);
        if (amount > 0) {
          const list = pairWords.get(key);
          if (!list) pairWords.set(key, [w]);
          else if (list[list.length - 1] !== w) list.push(w);
        }
      };
      for (const w of pairWords.get(top.key) ?? []) {
        const word = words[w];
        const count = wordCounts[w];
        let found = false;
        for (let i = 0; i + 1 < word.length; i++) {
          if (word[i] === a && word[i + 1] === b) {
            found = true;
            break;
          }
        }
        if (!found) continue;
        // Local update of the pair counts around each occurrence (left to right, non-overlapping).
        const out: number[] = [];
        let i = 0;
        while (i < word.length) {
          if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
            if (out.length > 0) {
              const prev = out[out.length - 1];
              add(prev, a, -count, w);
              add(prev, c, count, w);
            }
            add(a, b, -count, w);
            if (i + 2 < word.length) {
              const next = word[i + 2];
              add(b, next, -count, w);
              add(c, next, count, w);
            }
            out.push(c);
            i += 2;
          } else {
            out.push(word[i]);
            i += 1;
          }
        }
        words[w] = Int32Array.from(out);
      }
      pairWords.delete(top.key);
      for (const [key, change] of delta) {
        if (change === 0) continue;
        const next = (pairCounts.get(key) ?? 0) + change;
        if (next <= 0) pairCounts.delete(key);
        else pairCounts.set(key, next);
        // Decreases leave a too-high heap entry that is requeued when popped; increases need a push.
        if (change > 0) heap.push({ key, count: next });
      }
      pairCounts.delete(top.key);
    }
    return new BpeTokenizer(tokens, merges);
  }

  /** Loads a tokenizer.json object (as written by toJSON; merges as "a b" strings or [a, b] pairs). */
  static fromJSON(json: unknown, source = 'tokenizer.json'): BpeTokenizer {
    const fail = (field: string, message: string): never => {
      throw new TokenizerFormatError(`${source}: ${field}: ${message}`);
    };
    const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
    if (!isObject(json)) fail('(root)', 'expected a JSON object');
    const root = json as Record<string, unknown>;
    const model = root.model;
    if (!isObject(model)) return fail('model', 'expected an object');
    if (model.type !== 'BPE') fail('model.type', `expected "BPE", got ${JSON.stringify(model.type)}`);
    const vocab = model.vocab;
    if (!isObject(vocab)) return fail('model.vocab', 'expected an object {token: id}');
    const size = Object.keys(vocab).length;
    const tokens: string[] = new Array(size);
    for (const [token, id] of Object.entries(vocab)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= size) {
        fail(`model.vocab[${JSON.stringify(token)}]`, `expected an integer id in 0..${size - 1}, got ${JSON.stringify(id)}`);
      }
      if (tokens[id as number] !== undefined) {
        fail(`model.vocab[${JSON.stringify(token)}]`, `id ${id} is also used by ${JSON.stringify(tokens[id as number])}`);
      }
      tokens[id as number] = token;
    }
    SPECIAL_TOKENS.forEach((special, id) => {
      if (tokens[id] !== special) fail('model.vocab', `expected special token ${special} at id ${id}, found ${JSON.stringify(tokens[id])}`);
    });
    if (root.added_tokens !== undefined) {
      if (!Array.isArray(root.added_tokens)) fail('added_tokens', 'expected an array');
      (root.added_tokens as unknown[]).forEach((entry, i) => {
        if (!isObject(entry) || typeof entry.id !== 'number' || typeof entry.content !== 'string') {
          fail(`added_tokens[${i}]`, 'expected {id, content, ...}');
        }
        const e = entry as { id: number; content: string };
        if (tokens[e.id] !== e.content) fail(`added_tokens[${i}]`, `${JSON.stringify(e.content)} has id ${e.id} but model.vocab disagrees`);
      });
    }
    for (let id = SPECIAL_COUNT; id < size; id++) {
      const token = tokens[id];
      if (token.length === 0) fail(`model.vocab[${JSON.stringify(token)}]`, 'empty token');
      for (const ch of token) {
        if (!UNICODE_TO_BYTE.has(ch)) fail(`model.vocab[${JSON.stringify(token)}]`, `character ${JSON.stringify(ch)} is not in the byte-level alphabet`);
      }
    }
    const idOf = new Map<string, number>();
    tokens.forEach((t, id) => {
      if (id >= SPECIAL_COUNT) idOf.set(t, id);
    });
    for (const ch of BYTE_TO_UNICODE) {
      if (!idOf.has(ch)) fail('model.vocab', `missing the byte token ${JSON.stringify(ch)} (byte ${UNICODE_TO_BYTE.get(ch)})`);
    }
    if (!Array.isArray(model.merges)) return fail('model.merges', 'expected an array');
    const merges: [number, number][] = (model.merges as unknown[]).map((entry, i) => {
      let parts: unknown[];
      if (typeof entry === 'string') parts = entry.split(' ');
      else if (Array.isArray(entry)) parts = entry;
      else return fail(`model.merges[${i}]`, `expected "a b" or ["a", "b"], got ${JSON.stringify(entry)}`);
      if (parts.length !== 2 || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') {
        return fail(`model.merges[${i}]`, `expected two tokens, got ${JSON.stringify(entry)}`);
      }
      const [left, right] = parts as [string, string];
      const a = idOf.get(left);
      const b = idOf.get(right);
      if (a === undefined) return fail(`model.merges[${i}]`, `token ${JSON.stringify(left)} is not in model.vocab`);
      if (b === undefined) return fail(`model.merges[${i}]`, `token ${JSON.stringify(right)} is not in model.vocab`);
      if (!idOf.has(left + right)) fail(`model.merges[${i}]`, `merged token ${JSON.stringify(left + right)} is not in model.vocab`);
      return [a, b];
    });
    return new BpeTokenizer(tokens, merges);
  }

  /** The Hugging Face tokenizer.json object (merges in the current [a, b] pair form). */
  toJSON(): object {
    const vocab: Record<string, number> = {};
    this.tokens.forEach((token, id) => {
      vocab[token] = id;
    });
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: SPECIAL_TOKENS.map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: this.merges.map(([a, b]) => [this.tokens[a], this.tokens[b]]),
      },
    };
  }

  /** Merges in rank order as byte-level token strings (e.g. ["Ġ", "t"]). */
  mergeList(): [string, string][] {
    return this.merges.map(([a, b]) => [this.tokens[a], this.tokens[b]]);
  }

  /** The token's text: byte-level form ("Ġthe") for ordinary tokens, the literal for specials. */
  tokenString(id: number): string {
    this.checkId(id);
    return this.tokens[id];
  }

  /** How many raw bytes the token stands for (0 for special tokens). */
  tokenByteLength(id: number): number {
    this.checkId(id);
    return this.tokenBytes[id].length;
  }

  isSpecial(id: number): boolean {
    return id >= 0 && id < SPECIAL_COUNT;
  }

  /** Ordinary text to ids; never produces special tokens (their literal text is encoded as bytes). */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const piece of pretokenize(text)) {
      let pieceIds = this.cache.get(piece);
      if (pieceIds === undefined) {
        pieceIds = this.encodePiece(piece);
        if (this.cache.size >= MAX_CACHE_WORDS) this.cache.clear();
        this.cache.set(piece, pieceIds);
      }
      for (const id of pieceIds) ids.push(id);
    }
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    let text = '';
    let pending: number[] = [];
    const flush = (): void => {
      if (pending.length === 0) return;
      text += utf8Decoder.decode(Uint8Array.from(pending));
      pending = [];
    };
    for (const id of ids) {
      this.checkId(id);
      if (id < SPECIAL_COUNT) {
        flush();
        if (!options.skipSpecial) text += this.tokens[id];
      } else {
        for (const b of this.tokenBytes[id]) pending.push(b);
      }
    }
    flush();
    return text;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  /**
   * Standard BPE on one piece: repeatedly merge the adjacent pair with the lowest rank (leftmost
   * first among equal ranks). A heap over (rank, position) with a linked list keeps long pieces
   * (minified code, base64) at O(n log n) instead of O(n^2).
   */
  private encodePiece(piece: string): number[] {
    const bytes = utf8Encoder.encode(piece);
    const n = bytes.length;
    const sym = new Int32Array(n);
    for (let i = 0; i < n; i++) sym[i] = this.byteIds[bytes[i]];
    if (n < 2) return Array.from(sym);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const alive = new Uint8Array(n).fill(1);
    const POS = 2 ** 32;
    const heap = new NumberHeap();
    const pushPair = (i: number): void => {
      const j = next[i];
      if (j < 0) return;
      const rank = this.mergeRank.get(sym[i] * this.shift + sym[j]);
      if (rank !== undefined) heap.push(rank * POS + i);
    };
    for (let i = 0; i + 1 < n; i++) pushPair(i);
    while (heap.size > 0) {
      const entry = heap.pop();
      const rank = Math.floor(entry / POS);
      const i = entry - rank * POS;
      const j = next[i];
      // Skip entries made stale by an earlier merge at or next to this position.
      if (!alive[i] || j < 0 || this.mergeRank.get(sym[i] * this.shift + sym[j]) !== rank) continue;
      sym[i] = this.mergedIds[rank];
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) pushPair(prev[i]);
      pushPair(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
    return out;
  }
}
