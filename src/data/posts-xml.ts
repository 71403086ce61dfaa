// Streaming reader for Stack Exchange data-dump XML (`<posts><row .../>...</posts>`), shared by
// the instruction-data reader (readers.ts) and the pretraining-text reader (pretrain-text.ts).
// Dumps can be gigabytes, so rows are handed over one at a time as sax parses them.
import { createReadStream } from 'node:fs';
import path from 'node:path';
import sax from 'sax';
import { DataError } from './errors.ts';
import { stripBom } from '../util/text.ts';

export interface PostsXmlHandler {
  /**
   * Called for each `<row>` element below the root element, in file order: its attributes
   * (entities decoded, carriage returns as written) and the 1-based line of the row's tag.
   * An error thrown here stops the reading and is rethrown by streamPostsXml.
   */
  row(attrs: Record<string, string>, line: number): void;
  /** With skipInvalid: a row whose tag had an XML error; it is not passed to row(). */
  brokenRow?(): void;
  /** With skipInvalid: malformed XML that spoiled no row (such as a mismatched closing tag). */
  errorOutsideRows?(): void;
}

/**
 * sax checks its text and attribute buffers against a module-wide MAX_BUFFER_LENGTH (64 KiB),
 * and a Body attribute holds a whole post (posts of 200 KB exist). The limit is lifted only
 * while our parser is created and fed (synchronous calls, so no other sax parser runs
 * meanwhile), which covers sax reading it at creation or at every write.
 */
function withoutSaxBufferLimit<T>(run: () => T): T {
  const limits = sax as unknown as { MAX_BUFFER_LENGTH: number };
  const saved = limits.MAX_BUFFER_LENGTH;
  limits.MAX_BUFFER_LENGTH = Infinity;
  try {
    return run();
  } finally {
    limits.MAX_BUFFER_LENGTH = saved;
  }
}

/**
 * Stream `file` (UTF-8, a leading byte order mark ignored) and pass every row to `handler`.
 * Elements other than `row` below the root are ignored. A file cut off before its closing root
 * tag is read up to the cut (partial dumps are common).
 *
 * Errors: a DataError "file: cannot read (CODE)" when the file cannot be read; without
 * skipInvalid, a DataError "file:line: malformed XML (...)" at the first XML error; anything
 * `handler.row` throws.
 */
export async function streamPostsXml(file: string, skipInvalid: boolean, handler: PostsXmlHandler): Promise<void> {
  const parser = withoutSaxBufferLimit(() => sax.parser(true, { trim: false, normalize: false, position: true }));
  let parseError: DataError | undefined;
  let sawRoot = false;
  /**
   * With skipInvalid: where the tag with a parser error starts. sax reports errors inside an
   * opening tag before that tag's opentag event, at the same startTagPosition, so a malformed
   * row is skipped and counted once however many errors it raised. Errors no row claims (a
   * mismatched closing tag) spoil no row and are reported as outside rows.
   */
  let brokenTagAt: number | undefined;
  const settleBrokenTag = (): void => {
    if (brokenTagAt !== undefined) handler.errorOutsideRows?.();
    brokenTagAt = undefined;
  };

  parser.onerror = (err) => {
    const message = err.message.split('\n')[0];
    parser.error = null as unknown as Error;
    // Partial dumps may be cut off before </posts>; everything read so far is usable.
    if (/Unclosed root tag/i.test(message ?? '')) return;
    if (!skipInvalid) parseError ??= new DataError(`${file}:${parser.line + 1}: malformed XML (${message})`);
    else if (brokenTagAt !== parser.startTagPosition) {
      settleBrokenTag();
      brokenTagAt = parser.startTagPosition;
    }
    parser.resume();
  };
  parser.onclosetag = () => settleBrokenTag();
  parser.onopentag = (node) => {
    const broken = brokenTagAt !== undefined && brokenTagAt === parser.startTagPosition;
    if (broken) brokenTagAt = undefined;
    else settleBrokenTag();
    if (!sawRoot) {
      sawRoot = true;
      return;
    }
    if (node.name !== 'row') return;
    if (broken) {
      handler.brokenRow?.();
      return;
    }
    handler.row(node.attributes as Record<string, string>, parser.line + 1);
  };

  const stream = createReadStream(file, { encoding: 'utf8' });
  let first = true;
  try {
    for await (const chunk of stream) {
      let text = chunk as string;
      if (first) {
        text = stripBom(text);
        first = false;
      }
      withoutSaxBufferLimit(() => parser.write(text));
      if (parseError) throw parseError;
    }
    withoutSaxBufferLimit(() => parser.close());
    settleBrokenTag();
    if (parseError) throw parseError;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code && !(err instanceof DataError)) {
      throw new DataError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code})`);
    }
    throw err;
  } finally {
    stream.destroy();
  }
}

/**
 * An integer attribute of a row. Missing or empty: undefined, or (required) an error. Not an
 * integer: an error. `fail(message, reason)` makes the error to throw; messages start with
 * `where` and name the attribute, reasons are "missing-KEY" / "wrong-type-KEY".
 */
export function intAttr(attrs: Record<string, string>, key: string, where: string, required: boolean, fail: (message: string, reason: string) => Error): number | undefined {
  const raw = attrs[key];
  if (raw === undefined || raw === '') {
    if (required) throw fail(`${where}: field "${key}": missing`, `missing-${key}`);
    return undefined;
  }
  const n = Number(raw);
  if (!Number.isInteger(n)) throw fail(`${where}: field "${key}": expected an integer, got ${JSON.stringify(raw)}`, `wrong-type-${key}`);
  return n;
}

/** Carriage returns as line feeds ("\r\n" and a lone "\r"), as HTML parsing does for bodies. */
export const crToLf = (text: string): string => text.replace(/\r\n?/g, '\n');

/** Site name for ids and sources: the dump's directory ("beer") when the file is Posts.xml, else the file name without ".xml". */
export function siteOf(file: string): string {
  const base = path.basename(file);
  return /^posts\.xml$/i.test(base) ? path.basename(path.dirname(path.resolve(file))) : base.replace(/\.xml$/i, '');
}
