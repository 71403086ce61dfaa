// Reading the choice (1..6) out of an LLM judge's reply. The template asks for the reasoning
// first and the bare choice on the last line; replies that drift from that format are still
// read when a single standalone digit can be found, and are otherwise invalid (null).

// Decorations allowed around a choice on the last line: **5**, "5", `5`, (5), 5.
const STRIP = /^[\s*_"'`“”‘’([]+|[\s*_"'`“”‘’)\].:]+$/g;
const LABEL = /^(?:final\s+)?(?:choice|answer|score|rating|grade|verdict)\s*[:=\-]?\s*/i;

/** The choice a line holds once its decorations and label are stripped, else null. */
function lineChoice(line: string): number | null {
  const bare = line.trim().replace(STRIP, '').replace(LABEL, '').replace(STRIP, '');
  return /^[1-6]$/.test(bare) ? Number(bare) : null;
}

/** The last non-empty line if it is a choice, else the last standalone digit 1..6, else null. */
export function parseChoice(text: string): number | null {
  const last = text.split(/\r?\n/).filter((l) => l.trim().length > 0).at(-1);
  const choice = last !== undefined ? lineChoice(last) : null;
  if (choice !== null) return choice;
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
  const body = lineChoice(lines.at(-1) ?? '') !== null ? lines.slice(0, -1).join('\n') : lines.join('\n');
  return body.trim();
}
