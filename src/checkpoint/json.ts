// JSON as Python writes it (issue 13): transformers saves trainer_state.json (and config.json)
// with json.dumps, which writes NaN, Infinity and -Infinity for non-finite floats ("grad_norm":
// NaN after a diverged step). Those files are read with the maintained json5 parser, which takes
// these tokens outside strings; anything else that is not JSON stays an error naming the file.
import { promises as fs } from 'node:fs';
import JSON5 from 'json5';

/**
 * Parses `text` (a leading byte-order mark dropped) as JSON, also accepting Python's NaN, Infinity
 * and -Infinity as numbers (parsed as NaN / ±Infinity; json5 also takes its other extensions:
 * comments, trailing commas, single quotes). Standard JSON goes through JSON.parse unchanged.
 * Throws `<file>: not JSON (<JSON.parse's message>)` when neither parser accepts it.
 */
export function parsePythonJson(text: string, file: string): unknown {
  const body = text.replace(/^\uFEFF/, '');
  try {
    return JSON.parse(body);
  } catch (err) {
    try {
      return JSON5.parse(body);
    } catch {
      throw new Error(`${file}: not JSON (${(err as Error).message})`);
    }
  }
}

/** Reads and parses `file` with parsePythonJson; throws `<file>: cannot read (<code>)` or `<file>: not JSON (...)`. */
export async function readPythonJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return parsePythonJson(text, file);
}
