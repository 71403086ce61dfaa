// The LLM judge's prompt template: LIMA's helpfulness rubric (Appendix D, after OpenAI evals'
// model-graded "classify") in templates/helpfulness.txt, replaceable via `templatePath`.
// Placeholders: {prompt}, {response}, {reference} (empty when none) and {reference_section}
// (a "[Reference]" block between data markers, or nothing when there is no reference).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../util/hash.ts';
import { stripBom } from '../util/text.ts';

export const DEFAULT_TEMPLATE_PATH = fileURLToPath(new URL('./templates/helpfulness.txt', import.meta.url));

export interface JudgeTemplate {
  path: string;
  text: string;
  /** sha256 of the template text: part of every cache key, so an edited template re-judges. */
  hash: string;
}

const PLACEHOLDER = /\{(prompt|response|reference|reference_section)\}/g;

export function loadTemplate(file: string = DEFAULT_TEMPLATE_PATH): JudgeTemplate {
  let text: string;
  try {
    text = stripBom(readFileSync(file, 'utf8')); // a byte order mark is no part of the prompt
  } catch (err) {
    throw new Error(`${file}: cannot read the judge template (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  for (const required of ['{prompt}', '{response}']) {
    if (!text.includes(required)) throw new Error(`${file}: the judge template has no ${required} placeholder`);
  }
  return { path: file, text, hash: sha256(text) };
}

/**
 * Fills the placeholders in one pass: inserted text is never scanned again, so a "{response}"
 * inside the user's prompt stays literal. (A function replacement also keeps "$&" literal.)
 */
export function renderTemplate(template: string, values: { prompt: string; response: string; reference?: string }): string {
  const reference = values.reference ?? '';
  const section = values.reference ? `[Reference answer, for context; the submission need not match it]: ${values.reference}\n***\n` : '';
  return template.replace(PLACEHOLDER, (_match, name: string) => {
    switch (name) {
      case 'prompt':
        return values.prompt;
      case 'response':
        return values.response;
      case 'reference':
        return reference;
      default:
        return section;
    }
  });
}
