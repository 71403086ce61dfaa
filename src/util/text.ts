// Small text helpers shared by the stages: reading text files people edit by hand (which may
// start with a byte order mark), splitting JSONL into lines, and shortening text for display.

/** `text` without a leading UTF-8 byte order mark (U+FEFF), which editors on Windows add. */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Split streamed text into lines at line feeds ("\n") only, dropping one "\r" before each
 * line feed (CRLF files). JSON strings may hold U+2028/U+2029, U+0085 or a lone "\r"
 * unescaped; those are not line ends here, whatever Node's readline does on a given version.
 * The last line is yielded even without a final line feed (an empty last line is not).
 * Yields each line with its 1-based number.
 */
export async function* splitLines(chunks: AsyncIterable<string> | Iterable<string>): AsyncGenerator<{ line: string; number: number }> {
  let pending = '';
  let number = 0;
  for await (const chunk of chunks) {
    const searchFrom = pending.length; // a long line is not rescanned chunk after chunk
    pending += chunk;
    let start = 0;
    for (let end = pending.indexOf('\n', searchFrom); end >= 0; end = pending.indexOf('\n', start)) {
      const stop = end > start && pending.charCodeAt(end - 1) === 13 ? end - 1 : end;
      yield { line: pending.slice(start, stop), number: ++number };
      start = end + 1;
    }
    pending = pending.slice(start);
  }
  if (pending !== '') yield { line: pending.endsWith('\r') ? pending.slice(0, -1) : pending, number: ++number };
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * `text` cut to at most `maxChars` UTF-16 code units plus "…" when it is longer. The cut falls
 * between grapheme clusters (Intl.Segmenter, Unicode UAX #29), so it never splits a surrogate
 * pair (an emoji would show as U+FFFD), a combining accent or a ZWJ emoji sequence. A first
 * grapheme longer than `maxChars` gives just "…".
 */
export function truncate(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  let end = 0;
  for (const { index, segment } of graphemes.segment(text)) {
    if (index + segment.length > maxChars) break;
    end = index + segment.length;
  }
  return text.slice(0, end) + '…';
}
