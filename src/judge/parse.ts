// Reading the choice (1..6) out of an LLM judge's reply. The template asks for the reasoning
// first and the bare choice on the last line; replies that drift from that format are still
// read when a single standalone digit can be found, and are otherwise invalid (null).

// Decorations allowed around a choice on the last line: **5**, "5", `5`, (5), 5.
const STRIP = /^[\s*_"'`“”‘’([]+|[\s*_"'`“”‘’)\].:]+$/g;
const LABEL = /^(?:final\s+)?(?:choice|answer|score|rating|grade|verdict)\s*[:=\-]?\s*/i;

/** The last non-empty line if it is a choice, else the last standalone digit 1..6, else null. */
export function parseChoice(text: string): number | null {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  const last = lines.at(-1);
  if (last !== undefined) {
    const bare = last.replace(STRIP, '').replace(LABEL, '').replace(STRIP, '');
    if (/^[1-6]$/.test(bare)) return Number(bare);
  }
  // Fallback: a digit 1..6 standing alone: not part of a number ("10", "3.5"), a word
  // ("gpt4"), a ratio ("5/10") or a range ("1-6", which the template itself mentions).
  const standalone = /(?<![\p{L}\p{N}_.\/\-])[1-6](?![\p{L}\p{N}_\/\-]|[.,]\d)/gu;
  let found: number | null = null;
  for (const m of text.matchAll(standalone)) found = Number(m[0]);
  return found;
}

/** The reasoning part of a reply: everything before the final choice line (or the whole reply). */
export function reasoningOf(text: string): string {
  const lines = text.replace(/\s+$/, '').split(/\r?\n/);
  const last = lines.at(-1)?.trim() ?? '';
  const bare = last.replace(STRIP, '').replace(LABEL, '').replace(STRIP, '');
  const body = /^[1-6]$/.test(bare) ? lines.slice(0, -1).join('\n') : lines.join('\n');
  return body.trim();
}
