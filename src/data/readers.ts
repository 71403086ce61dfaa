// Readers for the data formats the harness accepts. Every reader yields the canonical
// ChatRecord; bad input either throws a DataError naming file:line and field, or (skipInvalid)
// is counted under a reason. Stack Exchange Posts.xml is streamed (dumps can be gigabytes).
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { ChatRecord, Role, Turn } from './types.ts';
import { htmlToText } from './html-to-text.ts';
import { DataError } from './errors.ts';
import { crToLf, intAttr as rowIntAttr, siteOf, streamPostsXml } from './posts-xml.ts';
import { splitLines, stripBom } from '../util/text.ts';

export type DataFormat = 'lima' | 'alpaca' | 'se-xml' | 'chat';
export const DATA_FORMATS: readonly DataFormat[] = ['lima', 'alpaca', 'se-xml', 'chat'];

export { DataError };

export interface ReadResult {
  format: DataFormat;
  records: ChatRecord[];
  /** Records that are exactly one user turn and one assistant turn (system turns aside). */
  pairs: number;
  skipped: number;
  skippedByReason: Record<string, number>;
  /**
   * Rows kept but built differently from the usual rule, by reason: "empty-accepted-answer"
   * (a question whose accepted answer has no text took its best remaining answer instead).
   * Also "xml-error-outside-rows" (with skipInvalid: malformed XML that spoiled no row, such as
   * a mismatched closing tag).
   */
  notes: Record<string, number>;
}

export interface ReadOptions {
  format?: DataFormat;
  skipInvalid?: boolean;
}

/** True when a record is one user turn followed by one assistant turn (system turns ignored). */
export function isSingleTurn(record: ChatRecord): boolean {
  const turns = record.turns.filter((t) => t.role !== 'system');
  return turns.length === 2 && turns[0]!.role === 'user' && turns[1]!.role === 'assistant';
}

const PEEK_BYTES = 64 * 1024;

/** Guess the format from the first bytes: XML, or the fields of the first JSON record (the first line of JSONL, the first element of a JSON array). */
export async function detectFormat(file: string): Promise<DataFormat> {
  const head = await peek(file, PEEK_BYTES);
  const trimmed = head.trimStart();
  if (trimmed.startsWith('<')) return 'se-xml';
  const isArray = trimmed.startsWith('[');
  if (!isArray && !trimmed.startsWith('{')) throw new DataError(`${file}:1: cannot tell the format: not JSON, JSONL or XML`);
  const first = isArray ? firstArrayElement(trimmed) : trimmed.split('\n', 1)[0]!;
  if (isArray && first === '') return 'alpaca'; // an empty array: no records in any format
  let keys: string[] | undefined;
  try {
    const parsed: unknown = JSON.parse(first ?? '');
    keys = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? Object.keys(parsed) : [];
  } catch {
    // A pretty-printed first object, or a first element longer than the peeked bytes: fall back
    // to looking for key names in the peeked text.
  }
  const has = (key: string) => (keys ? keys.includes(key) : new RegExp(`"${key}"\\s*:`).test(trimmed));
  if (has('conversations')) return 'lima';
  if (has('instruction')) return 'alpaca';
  if (has('messages') || has('prompt') || has('question')) return 'chat';
  throw new DataError(`${file}:1: cannot tell the format of the ${isArray ? "array's first element" : 'first record'} (expected a "conversations", "instruction", "messages", "prompt" or "question" field); pass the format explicitly`);
}

/**
 * The text of a JSON array's first element ("" for an empty array), or undefined when it does
 * not end within `text` (a peeked prefix of the file).
 */
function firstArrayElement(text: string): string | undefined {
  let depth = 0;
  let inString = false;
  let start = -1;
  for (let i = text.indexOf('[') + 1; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (start < 0 && !/\s/.test(c)) start = i;
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if (depth > 0 && (c === ']' || c === '}')) depth--;
    else if (depth === 0 && (c === ',' || c === ']')) return text.slice(start, i).trim();
  }
  return undefined;
}

const FORMAT_NAMES: Record<DataFormat, string> = { lima: 'LIMA', alpaca: 'Alpaca', chat: 'chat', 'se-xml': 'Stack Exchange' };

export async function readRecords(file: string, opts: ReadOptions = {}): Promise<ReadResult> {
  const format = opts.format ?? (await detectFormat(file));
  const collector = new Collector(file, opts.skipInvalid ?? false);
  if (format === 'se-xml') {
    await readPostsXml(file, collector);
  } else {
    const toTurns = format === 'lima' ? limaTurns : format === 'alpaca' ? alpacaTurns : chatTurns;
    if ((await peek(file, 4096)).trimStart().startsWith('[')) {
      await readJsonArray(file, collector, FORMAT_NAMES[format], toTurns);
    } else {
      await forEachJsonLine(file, collector, (value, line) => {
        collector.add(() => ({ id: `${collector.label}:${line}`, source: sourceOf(value, collector.source), turns: toTurns(value, collector.at(line)) }));
      });
    }
  }
  const records = collector.records;
  return { format, records, pairs: records.filter(isSingleTurn).length, skipped: collector.skipped, skippedByReason: collector.skippedByReason, notes: collector.notes };
}

/** Collects records; with skipInvalid a DataError becomes a counted skip instead of a failure. */
class Collector {
  readonly records: ChatRecord[] = [];
  skipped = 0;
  readonly skippedByReason: Record<string, number> = {};
  readonly notes: Record<string, number> = {};
  /** "dir/basename": names the file in ids, stable across machines. */
  readonly label: string;
  readonly source: string;

  constructor(
    readonly file: string,
    readonly skipInvalid: boolean,
  ) {
    this.label = `${path.basename(path.dirname(path.resolve(file)))}/${path.basename(file)}`;
    this.source = path.basename(file);
  }

  at(line: number): string {
    return `${this.file}:${line}`;
  }

  skip(reason: string, n = 1): void {
    this.skipped += n;
    this.skippedByReason[reason] = (this.skippedByReason[reason] ?? 0) + n;
  }

  note(reason: string): void {
    this.notes[reason] = (this.notes[reason] ?? 0) + 1;
  }

  /** Run `make`; a RecordError is skipped (skipInvalid) or rethrown as a DataError. */
  add(make: () => ChatRecord): void {
    try {
      this.records.push(make());
    } catch (err) {
      this.fail(err);
    }
  }

  fail(err: unknown): void {
    if (!(err instanceof RecordError)) throw err;
    if (this.skipInvalid) this.skip(err.reason);
    else throw new DataError(err.message);
  }
}

/** A problem with one record; `reason` is the skippedByReason key. */
class RecordError extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.trim() === '' ? 'an empty string' : 'a string';
  return typeof value;
}

function fieldString(obj: Record<string, unknown>, key: string, where: string, opts: { optional?: boolean; allowEmpty?: boolean; label?: string } = {}): string {
  const value = obj[key];
  const label = opts.label ?? key;
  if (value === undefined && opts.optional) return '';
  if (typeof value !== 'string') {
    throw new RecordError(`${where}: field "${label}": expected ${opts.allowEmpty ? 'a string' : 'a non-empty string'}, got ${value === undefined ? 'nothing (missing)' : describe(value)}`, value === undefined ? `missing-${key}` : `wrong-type-${key}`);
  }
  if (!opts.allowEmpty && value.trim() === '') {
    throw new RecordError(`${where}: field "${label}": expected a non-empty string, got an empty string`, `empty-${key}`);
  }
  return value;
}

function expectRecordObject(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RecordError(`${where}: expected a JSON object, got ${describe(value)}`, 'not-an-object');
  }
  return value as Record<string, unknown>;
}

function sourceOf(value: unknown, fallback: string): string {
  const s = value && typeof value === 'object' ? (value as Record<string, unknown>).source : undefined;
  return typeof s === 'string' && s.trim() !== '' ? s : fallback;
}

// ---- JSONL ----------------------------------------------------------------------------

async function forEachJsonLine(file: string, collector: Collector, handle: (value: unknown, line: number) => void): Promise<void> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  try {
    // Our own splitting, not readline: JSON strings may hold U+2028/U+2029 unescaped, which
    // readline treats as line ends on some Node versions.
    for await (const { line: raw, number: lineNo } of splitLines(stream as AsyncIterable<string>)) {
      const text = lineNo === 1 ? stripBom(raw) : raw;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        collector.fail(new RecordError(`${collector.at(lineNo)}: not valid JSON (${(err as Error).message})`, 'bad-json'));
        continue;
      }
      handle(value, lineNo);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) throw new DataError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code})`);
    throw err;
  } finally {
    stream.destroy();
  }
}

/** Read every line of a JSONL file as T; errors name file:line. */
export async function readJsonLines<T>(file: string): Promise<T[]> {
  const out: T[] = [];
  await forEachJsonLine(file, new Collector(file, false), (value) => out.push(value as T));
  return out;
}

function limaTurns(value: unknown, where: string): Turn[] {
  const obj = expectRecordObject(value, where);
  const conversations = obj.conversations;
  if (!Array.isArray(conversations) || conversations.length === 0) {
    throw new RecordError(`${where}: field "conversations": expected a non-empty array of strings, got ${conversations === undefined ? 'nothing (missing)' : describe(conversations)}`, conversations === undefined ? 'missing-conversations' : 'wrong-type-conversations');
  }
  if (conversations.length % 2 !== 0) {
    throw new RecordError(`${where}: field "conversations": expected alternating user/assistant strings ending with a response, got ${conversations.length} strings`, 'no-response');
  }
  return conversations.map((_, i) => ({
    role: i % 2 === 0 ? 'user' : 'assistant',
    content: fieldString(conversations as unknown as Record<string, unknown>, String(i), where, { label: `conversations[${i}]` }),
  }));
}

const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

function chatTurns(value: unknown, where: string): Turn[] {
  const obj = expectRecordObject(value, where);
  if (obj.messages !== undefined) {
    const messages = obj.messages;
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new RecordError(`${where}: field "messages": expected a non-empty array, got ${describe(messages)}`, 'wrong-type-messages');
    }
    const turns = messages.map((m, i): Turn => {
      const msg = expectRecordObject(m, `${where}: field "messages[${i}]"`);
      const role = msg.role;
      if (typeof role !== 'string' || !ROLES.includes(role as Role)) {
        throw new RecordError(`${where}: field "messages[${i}].role": expected one of ${ROLES.join(', ')}, got ${JSON.stringify(role) ?? 'nothing (missing)'}`, 'unknown-role');
      }
      return { role: role as Role, content: fieldString(msg, 'content', where, { label: `messages[${i}].content` }) };
    });
    if (!turns.some((t) => t.role === 'user')) throw new RecordError(`${where}: field "messages": no user turn`, 'no-prompt');
    if (turns[turns.length - 1]!.role !== 'assistant') throw new RecordError(`${where}: field "messages": the last message must be the assistant's response`, 'no-response');
    return turns;
  }
  const [promptKey, responseKey] = obj.prompt !== undefined || obj.response !== undefined ? ['prompt', 'response'] : ['question', 'answer'];
  return [
    { role: 'user', content: fieldString(obj, promptKey, where) },
    { role: 'assistant', content: fieldString(obj, responseKey, where) },
  ];
}

// ---- Alpaca -----------------------------------------------------------------------------

function alpacaTurns(value: unknown, where: string): Turn[] {
  const obj = expectRecordObject(value, where);
  const instruction = fieldString(obj, 'instruction', where);
  const input = fieldString(obj, 'input', where, { optional: true, allowEmpty: true });
  const output = fieldString(obj, 'output', where);
  const turns: Turn[] = [];
  const history = obj.history;
  if (history !== undefined && history !== null) {
    if (!Array.isArray(history)) throw new RecordError(`${where}: field "history": expected an array of [prompt, response] pairs, got ${describe(history)}`, 'wrong-type-history');
    history.forEach((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new RecordError(`${where}: field "history[${i}]": expected a [prompt, response] pair, got ${describe(pair)}`, 'wrong-type-history');
      }
      const p = pair as unknown as Record<string, unknown>;
      turns.push({ role: 'user', content: fieldString(p, '0', where, { label: `history[${i}][0]` }) });
      turns.push({ role: 'assistant', content: fieldString(p, '1', where, { label: `history[${i}][1]` }) });
    });
  }
  turns.push({ role: 'user', content: input.trim() === '' ? instruction : `${instruction}\n\n${input}` });
  turns.push({ role: 'assistant', content: output });
  return turns;
}

/** Records of any JSON format as one JSON array (JSONL takes forEachJsonLine). */
async function readJsonArray(file: string, collector: Collector, formatName: string, toTurns: (value: unknown, where: string) => Turn[]): Promise<void> {
  // Instruction datasets are small enough to parse whole.
  const text = stripBom(await fs.readFile(file, 'utf8'));
  let items: unknown;
  try {
    items = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const position = /position (\d+)/.exec(message);
    const line = position ? lineAt(text, Number(position[1])) : undefined;
    throw new DataError(`${file}${line ? `:${line}` : ''}: not valid JSON (${message})`);
  }
  if (!Array.isArray(items)) throw new DataError(`${file}:1: expected a JSON array of ${formatName} records`);
  const lines = elementLines(text);
  items.forEach((item, i) => {
    const where = `${file}:${lines[i] ?? '?'}`;
    collector.add(() => ({ id: `${collector.label}:${i}`, source: sourceOf(item, collector.source), turns: toTurns(item, `${where}: record ${i}`) }));
  });
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Line number where each top-level element of a JSON array starts (for error messages). */
function elementLines(text: string): number[] {
  const lines: number[] = [];
  let depth = 0;
  let line = 1;
  let inString = false;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') line++;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (depth === 1 && expectElement && !/\s/.test(c) && c !== ',' && c !== ']') {
      lines.push(line);
      expectElement = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectElement = true;
  }
  return lines;
}

/** The first `bytes` bytes of `file` as text (BOM stripped; a character cut at the end may be garbled). Errors: DataError "file: cannot open (CODE)". */
export async function peek(file: string, bytes: number): Promise<string> {
  const handle = await openOrThrow(file);
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return stripBom(buffer.subarray(0, bytesRead).toString('utf8'));
  } finally {
    await handle.close();
  }
}

async function openOrThrow(file: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(file, 'r');
  } catch (err) {
    throw new DataError(`${file}: cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

// ---- Stack Exchange Posts.xml -----------------------------------------------------------

interface QuestionInfo {
  title: string;
  bodyHtml: string;
  acceptedId?: number;
}

interface AnswerInfo {
  id: number;
  score: number;
  /** The Body's HTML until it is converted (once, when the answer could be chosen). */
  bodyHtml?: string;
  text?: string;
}

/** An answer's Body as text, converted on first use. */
function answerText(answer: AnswerInfo): string {
  if (answer.text === undefined) {
    answer.text = htmlToText(answer.bodyHtml ?? '');
    answer.bodyHtml = undefined;
  }
  return answer.text;
}

/**
 * What we keep per question: the accepted answer once seen, and the best-scored (>= 1) other
 * one. Answers without text (a missing or empty Body, or HTML with no text) are never chosen:
 * a question whose accepted answer has none takes the best remaining answer instead.
 */
interface Candidates {
  accepted?: AnswerInfo;
  /** The accepted answer was seen and has no text. */
  acceptedEmpty?: boolean;
  best?: AnswerInfo;
  /** Answers seen before their question, when we cannot yet tell which one is accepted. */
  early?: AnswerInfo[];
}

function better(a: AnswerInfo, b: AnswerInfo | undefined): boolean {
  return b === undefined || a.score > b.score || (a.score === b.score && a.id < b.id);
}

function offer(c: Candidates, answer: AnswerInfo, question: QuestionInfo | undefined): void {
  if (!question) {
    (c.early ??= []).push(answer);
  } else if (question.acceptedId === answer.id) {
    if (answerText(answer) !== '') c.accepted = answer;
    else c.acceptedEmpty = true;
  } else if (!c.accepted && answer.score >= 1 && better(answer, c.best) && answerText(answer) !== '') {
    // Converting only answers that would win keeps the work near one conversion per question.
    c.best = answer;
  }
}

async function readPostsXml(file: string, collector: Collector): Promise<void> {
  const site = siteOf(file);
  const questions = new Map<number, QuestionInfo>();
  const candidates = new Map<number, Candidates>();
  await streamPostsXml(file, collector.skipInvalid, {
    brokenRow: () => collector.skip('xml-error'),
    errorOutsideRows: () => collector.note('xml-error-outside-rows'),
    row: (attrs, line) => {
      const where = `${file}:${line}`;
      try {
        const id = intAttr(attrs, 'Id', where, true)!;
        const type = attrs.PostTypeId;
        if (type === '1') {
          const title = crToLf(attrs.Title ?? '');
          if (title.trim() === '') throw new RecordError(`${where}: field "Title": expected a non-empty string on question ${id}`, 'empty-title');
          const question: QuestionInfo = { title, bodyHtml: attrs.Body ?? '', acceptedId: intAttr(attrs, 'AcceptedAnswerId', where, false) };
          questions.set(id, question);
          const c = candidates.get(id);
          if (c?.early) {
            const early = c.early;
            delete c.early;
            for (const answer of early) offer(c, answer, question);
          }
        } else if (type === '2') {
          const parentId = intAttr(attrs, 'ParentId', where, true)!;
          const answer: AnswerInfo = { id, score: intAttr(attrs, 'Score', where, false) ?? 0, bodyHtml: attrs.Body ?? '' };
          let c = candidates.get(parentId);
          if (!c) candidates.set(parentId, (c = {}));
          offer(c, answer, questions.get(parentId));
        }
        // Other post types (tag wikis, moderator nominations, ...) are not question/answer pairs.
      } catch (err) {
        collector.fail(err);
      }
    },
  });

  // Answers whose question is not in the file (partial dumps): normal, counted.
  for (const [parentId, c] of candidates) {
    if (!questions.has(parentId) && c.early) collector.skip('orphan-answer', c.early.length);
  }
  const ids = [...questions.keys()].sort((a, b) => a - b);
  for (const id of ids) {
    const question = questions.get(id)!;
    const c = candidates.get(id);
    const answer = c?.accepted ?? c?.best;
    if (!answer) {
      collector.skip(c?.acceptedEmpty ? 'empty-accepted-answer' : 'unanswered');
      continue;
    }
    if (c!.acceptedEmpty) collector.note('empty-accepted-answer');
    const body = htmlToText(question.bodyHtml);
    const prompt = body === '' ? question.title.trim() : `${question.title.trim()}\n\n${body}`;
    collector.records.push({ id: `${site}:${id}`, source: site, turns: [{ role: 'user', content: prompt }, { role: 'assistant', content: answerText(answer) }] });
  }
}

function intAttr(attrs: Record<string, string>, key: string, where: string, required: boolean): number | undefined {
  return rowIntAttr(attrs, key, where, required, (message, reason) => new RecordError(message, reason));
}
