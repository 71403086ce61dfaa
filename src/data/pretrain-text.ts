// General text for pretraining the base model, read from files into documents: Stack Exchange
// data dumps (a question with its answers is one document), plain text files and JSONL of
// {"text": ...}. Documents that repeat a held-out or dev question are dropped, and the titles
// that caused a drop are returned so the report can show that dependency on the evaluation set.
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { DataError } from './errors.ts';
import { htmlToText } from './html-to-text.ts';
import { normalizeQuestion } from './normalize.ts';
import { crToLf, intAttr, siteOf, streamPostsXml } from './posts-xml.ts';
import { peek } from './readers.ts';
import { splitLines, stripBom } from '../util/text.ts';
import { ConfigError, expectObject, expectString } from '../util/validate.ts';

export type PretrainFormat = 'se-xml' | 'text' | 'jsonl';
export const PRETRAIN_FORMATS: readonly PretrainFormat[] = ['se-xml', 'text', 'jsonl'];

/** One pretraining file. Without `format` it is detected by detectPretrainFormat. */
export interface PretrainSource {
  path: string;
  format?: PretrainFormat;
}

export interface PretrainDocument {
  text: string;
  /**
   * Where the document came from: "site:ID" for a Stack Exchange question (its id; "site" is the
   * dump's directory), "site:aID" for an answer read on its own; "path" for a whole text file,
   * "path#N" for its N-th form-feed separated part (1-based); "path:LINE" for a JSONL line.
   */
  source: string;
  /** The question's title (Stack Exchange questions only). */
  title?: string;
}

export interface PretrainRead {
  /** Kept documents: sources in the given order, each source's documents in file order. */
  documents: PretrainDocument[];
  /**
   * Per source path, in the given order: `documents` kept, `dropped` as held-out/dev duplicates,
   * `skipped` rows by reason ("tag-wiki", "post-type-N", "no-body", "empty-text", "empty-part").
   */
  sources: Array<{ path: string; format: PretrainFormat; documents: number; dropped: number; skipped: Record<string, number> }>;
  /** Total dropped as duplicates of held-out/dev questions. */
  dropped: number;
  /** Normalised titles that caused a drop (sorted, unique) -- the base's dependency on the evaluation questions, kept visible. */
  droppedTitles: string[];
}

/**
 * The `pretrain` sources of a config: an array whose items are a path string or
 * `{ "path": string, "format"?: "se-xml" | "text" | "jsonl" }`. Errors (ConfigError) name the key,
 * e.g. `config.json: data.pretrain[2].format: expected one of ...`.
 */
export function validatePretrainSources(raw: unknown, where: string): PretrainSource[] {
  if (!Array.isArray(raw)) throw new ConfigError(`${where}: expected an array of "path" strings or { "path", "format"? } sources`);
  return raw.map((item, i) => {
    const at = `${where}[${i}]`;
    if (typeof item === 'string') return { path: expectString(item, at) };
    const src = expectObject(item, at, ['path', 'format']);
    const source: PretrainSource = { path: expectString(src.path, `${at}.path`) };
    if (src.format !== undefined) source.format = expectString(src.format, `${at}.format`, PRETRAIN_FORMATS) as PretrainFormat;
    return source;
  });
}

/**
 * The format of a pretraining file: "se-xml" when it is named Posts.xml (any case) or its root
 * element is <posts> (after an optional XML declaration and comments), "jsonl" when its name
 * ends in .jsonl, otherwise "text"; other .xml or XML files and .json files are errors (read as text they
 * would teach markup or JSON syntax: give format "text" for that). Errors: DataError "file: cannot open (CODE)".
 */
export async function detectPretrainFormat(file: string): Promise<PretrainFormat> {
  const head = await peek(file, 4096);
  if (/^posts\.xml$/i.test(path.basename(file))) return 'se-xml';
  const start = head.replace(/^\s*(<\?xml[\s\S]*?\?>\s*)?(<!--[\s\S]*?-->\s*)*/, '');
  if (/^<posts[\s>/]/.test(start)) return 'se-xml';
  if (/\.jsonl$/i.test(file)) return 'jsonl';
  // Other markup or JSON read as plain text would pretrain on its syntax: say so instead.
  if (/\.xml$/i.test(file) || /^<\?xml/.test(head.trimStart())) {
    throw new DataError(`${file}: an XML file that is not a Stack Exchange Posts.xml (its root is not <posts>); give "format": "text" to pretrain on it as plain text`);
  }
  if (/\.json$/i.test(file)) throw new DataError(`${file}: a .json file; pretraining reads JSONL ({"text": ...} per line, name it .jsonl or give "format": "jsonl"), or give "format": "text"`);
  return 'text';
}

/**
 * Read every source into documents, in source order, dropping documents whose key equals a key
 * of `exclude.questions` (the prompts of the held-out and dev records). A question's keys are
 * its normalised first line and its whole normalised prompt (normalizeQuestion); a document's
 * key is its normalised title (Stack Exchange questions) or its normalised first non-blank line
 * (everything else). Empty keys never match.
 *
 * Formats:
 * - se-xml: each question (PostTypeId 1) with Body is one document, "# Title\n\nbody" followed
 *   by its answers' bodies (PostTypeId 2, by ParentId), each after a blank line, the accepted
 *   answer first, then by Score (highest first), then by Id. Bodies are HTML converted to
 *   Markdown (htmlToText). An answer whose question is not in the file (or has no Body) is a
 *   document of its own; under a bodyless question it still takes that question's title as its
 *   key. Documents come in the file order of their first row. Tag wikis (4/5) and other post
 *   types are skipped ("tag-wiki", "post-type-N"), so are rows without a Body ("no-body") and
 *   answers whose HTML holds no text ("empty-text").
 * - text: the whole file is one document, or one per part when it holds form feeds ("\f");
 *   a leading BOM is removed, CRLF becomes LF, leading blank lines and trailing whitespace are
 *   removed; empty parts are skipped ("empty-part").
 * - jsonl: one {"text": string} object per line (other fields ignored, blank lines ignored,
 *   lines split at LF only); CRLF inside the text becomes LF; an empty text is skipped
 *   ("empty-text").
 *
 * Errors (DataError): "path: cannot open (CODE)" for a missing or unreadable file (the caller
 * adds the config key); "file:line: malformed XML (...)" or "file:line: field "X": ..." for a
 * row that cannot be read; "file:line: not valid JSON (...)", "file:line: expected a JSON
 * object ..." or "file:line: field "text": expected a string ..." in JSONL.
 */
export async function readPretrainText(sources: PretrainSource[], exclude: { questions: string[] }): Promise<PretrainRead> {
  const excluded = new Set<string>();
  for (const question of exclude.questions) {
    const newline = question.indexOf('\n');
    for (const key of [normalizeQuestion(newline < 0 ? question : question.slice(0, newline)), normalizeQuestion(question)]) {
      if (key !== '') excluded.add(key);
    }
  }
  const result: PretrainRead = { documents: [], sources: [], dropped: 0, droppedTitles: [] };
  const droppedKeys = new Set<string>();
  for (const source of sources) {
    await assertReadable(source.path);
    const format = source.format ?? (await detectPretrainFormat(source.path));
    const skipped: Record<string, number> = {};
    const skip = (reason: string): void => {
      skipped[reason] = (skipped[reason] ?? 0) + 1;
    };
    const read = format === 'se-xml' ? await readPostsDocuments(source.path, skip) : format === 'jsonl' ? await readJsonlDocuments(source.path, skip) : await readTextDocuments(source.path, skip);
    let kept = 0;
    let dropped = 0;
    for (const { doc, key } of read) {
      if (key !== '' && excluded.has(key)) {
        dropped++;
        droppedKeys.add(key);
      } else {
        result.documents.push(doc);
        kept++;
      }
    }
    result.sources.push({ path: source.path, format, documents: kept, dropped, skipped });
    result.dropped += dropped;
  }
  result.droppedTitles = [...droppedKeys].sort();
  return result;
}

/** A document read and the key it is compared with the excluded questions on. */
interface Keyed {
  doc: PretrainDocument;
  key: string;
}

async function assertReadable(file: string): Promise<void> {
  let stat;
  try {
    stat = await fs.stat(file);
  } catch (err) {
    throw new DataError(`${file}: cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!stat.isFile()) throw new DataError(`${file}: cannot open (not a file)`);
}

/** The normalised first line holding anything but whitespace ("" when none). */
function firstLineKey(text: string): string {
  const line = /^[ \t]*\S.*$/m.exec(text)?.[0] ?? '';
  return normalizeQuestion(line);
}

// ---- text -------------------------------------------------------------------------------

async function readTextDocuments(file: string, skip: (reason: string) => void): Promise<Keyed[]> {
  const text = stripBom(await fs.readFile(file, 'utf8')).replace(/\r\n/g, '\n');
  const parts = text.split('\f');
  const out: Keyed[] = [];
  parts.forEach((part, i) => {
    const body = part.replace(/^(?:[ \t]*\n)+/, '').trimEnd();
    if (body === '') {
      skip('empty-part');
      return;
    }
    out.push({ doc: { text: body, source: parts.length === 1 ? file : `${file}#${i + 1}` }, key: firstLineKey(body) });
  });
  return out;
}

// ---- jsonl ------------------------------------------------------------------------------

async function readJsonlDocuments(file: string, skip: (reason: string) => void): Promise<Keyed[]> {
  const out: Keyed[] = [];
  const stream = createReadStream(file, { encoding: 'utf8' });
  try {
    for await (const { line: raw, number } of splitLines(stream as AsyncIterable<string>)) {
      const line = number === 1 ? stripBom(raw) : raw;
      if (line.trim() === '') continue;
      const where = `${file}:${number}`;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw new DataError(`${where}: not valid JSON (${(err as Error).message})`);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new DataError(`${where}: expected a JSON object with a "text" string, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
      }
      const text = (value as Record<string, unknown>).text;
      if (typeof text !== 'string') {
        throw new DataError(`${where}: field "text": expected a string, got ${text === undefined ? 'nothing (missing)' : text === null ? 'null' : Array.isArray(text) ? 'an array' : typeof text}`);
      }
      const body = text.replace(/\r\n/g, '\n');
      if (body.trim() === '') {
        skip('empty-text');
        continue;
      }
      out.push({ doc: { text: body, source: where }, key: firstLineKey(body) });
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code && !(err instanceof DataError)) throw new DataError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code})`);
    throw err;
  } finally {
    stream.destroy();
  }
  return out;
}

// ---- Stack Exchange Posts.xml -------------------------------------------------------------

interface QuestionRow {
  /** Position among the file's rows (documents keep file order). */
  seq: number;
  id: number;
  title: string;
  bodyHtml: string;
  acceptedId?: number;
}

interface AnswerRow {
  seq: number;
  id: number;
  parentId: number;
  score: number;
  bodyHtml: string;
}

async function readPostsDocuments(file: string, skip: (reason: string) => void): Promise<Keyed[]> {
  const site = siteOf(file);
  const questions = new Map<number, QuestionRow>();
  /** Questions without a Body: their answers stand alone but are compared on the question's title. */
  const bodyless = new Map<number, string>();
  const answers: AnswerRow[] = [];
  const fail = (message: string): Error => new DataError(message);
  let seq = 0;
  await streamPostsXml(file, false, {
    row: (attrs, line) => {
      const where = `${file}:${line}`;
      const id = intAttr(attrs, 'Id', where, true, fail)!;
      const type = intAttr(attrs, 'PostTypeId', where, true, fail)!;
      if (type !== 1 && type !== 2) {
        skip(type === 4 || type === 5 ? 'tag-wiki' : `post-type-${type}`);
        return;
      }
      const bodyHtml = attrs.Body ?? '';
      if (type === 1) {
        const title = crToLf(attrs.Title ?? '').replace(/\s*\n\s*/g, ' ').trim();
        if (bodyHtml.trim() === '') {
          skip('no-body');
          bodyless.set(id, title);
          return;
        }
        if (questions.has(id)) throw new DataError(`${where}: field "Id": question ${id} appears twice`);
        questions.set(id, { seq: seq++, id, title, bodyHtml, acceptedId: intAttr(attrs, 'AcceptedAnswerId', where, false, fail) });
      } else {
        const parentId = intAttr(attrs, 'ParentId', where, true, fail)!;
        if (bodyHtml.trim() === '') {
          skip('no-body');
          return;
        }
        answers.push({ seq: seq++, id, parentId, score: intAttr(attrs, 'Score', where, false, fail) ?? 0, bodyHtml });
      }
    },
  });

  const byParent = new Map<number, AnswerRow[]>();
  const entries: Array<{ seq: number; keyed: Keyed }> = [];
  for (const answer of answers) {
    if (questions.has(answer.parentId)) {
      let list = byParent.get(answer.parentId);
      if (!list) byParent.set(answer.parentId, (list = []));
      list.push(answer);
      continue;
    }
    const text = htmlToText(answer.bodyHtml);
    if (text === '') {
      skip('empty-text');
      continue;
    }
    const title = bodyless.get(answer.parentId);
    entries.push({ seq: answer.seq, keyed: { doc: { text, source: `${site}:a${answer.id}` }, key: title !== undefined ? normalizeQuestion(title) : firstLineKey(text) } });
  }
  for (const question of questions.values()) {
    const list = byParent.get(question.id) ?? [];
    const accepted = question.acceptedId;
    list.sort((a, b) => Number(b.id === accepted) - Number(a.id === accepted) || b.score - a.score || a.id - b.id);
    const parts: string[] = [];
    if (question.title !== '') parts.push(`# ${question.title}`);
    const body = htmlToText(question.bodyHtml);
    if (body !== '') parts.push(body);
    for (const answer of list) {
      const text = htmlToText(answer.bodyHtml);
      if (text === '') skip('empty-text');
      else parts.push(text);
    }
    if (parts.length === 0) {
      skip('empty-text');
      continue;
    }
    const text = parts.join('\n\n');
    const doc: PretrainDocument = { text, source: `${site}:${question.id}` };
    if (question.title !== '') doc.title = question.title;
    entries.push({ seq: question.seq, keyed: { doc, key: question.title !== '' ? normalizeQuestion(question.title) : firstLineKey(text) } });
  }
  entries.sort((a, b) => a.seq - b.seq);
  return entries.map((e) => e.keyed);
}
