// The key two questions are compared on when deciding that they are the same question (held-out
// selection against training prompts, pretraining text against evaluation questions). A module
// of its own so that readers of any stage of the data can use it without importing prepare.ts.

/**
 * `text` lowercased after NFKC normalisation, with runs of Unicode punctuation and symbols
 * replaced by a space, whitespace collapsed to single spaces and trimmed. "" for text with no
 * letters or digits.
 */
export function normalizeQuestion(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\p{P}\p{S}]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
