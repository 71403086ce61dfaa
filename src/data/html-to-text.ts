// Stack Exchange post bodies are HTML; the model sees Markdown in the style of LIMA's training
// set: "#" headings, "*" / "1." lists, ``` code fences, "> " quotes, *emphasis*. turndown (an
// HTML-to-Markdown library, parsing with the domino DOM) does the conversion; the rules below
// only adapt its output to plain text for a language model: link and image URLs are dropped
// (the text stays), Markdown characters in the text are not backslash-escaped, list markers take
// one space, a <pre> without <code> is fenced like one with it, and table rows become
// "cell | cell" lines.
import TurndownService from 'turndown';

const service = new TurndownService({ headingStyle: 'atx', codeBlockStyle: 'fenced', fence: '```', bulletListMarker: '*', emDelimiter: '*', strongDelimiter: '**', hr: '---', br: '' });
// Backslash escapes ("1\. ", "\*") are for Markdown renderers; the model reads the text as written.
service.escape = (text: string) => text;
service.addRule('linkText', { filter: 'a', replacement: (content) => content });
service.addRule('imageAlt', {
  filter: 'img',
  // Image-only answers are common; keep what the author said the image shows.
  replacement: (_content, node) => {
    const alt = ((node as HTMLElement).getAttribute('alt') ?? '').trim();
    return alt ? `[image: ${alt}]` : '[image]';
  },
});
service.addRule('listItem', {
  filter: 'li',
  // turndown's own rule pads markers to four columns ("*   item"); LIMA's data writes "* item".
  replacement: (content, node) => {
    const parent = node.parentNode as HTMLElement;
    let prefix = '* ';
    if (parent.nodeName === 'OL') {
      const start = Number(parent.getAttribute('start'));
      prefix = `${(Number.isInteger(start) && parent.hasAttribute('start') ? start : 1) + Array.prototype.indexOf.call(parent.children, node)}. `;
    }
    const body = content.replace(/^\n+/, '').replace(/\n+$/, '\n').replace(/\n/g, `\n${' '.repeat(prefix.length)}`);
    return prefix + body + (node.nextSibling ? '\n' : '');
  },
});
service.addRule('preWithoutCode', {
  filter: (node) => node.nodeName === 'PRE' && node.firstChild?.nodeName !== 'CODE',
  replacement: (_content, node) => fence(node.textContent ?? ''),
});
service.addRule('tableCell', {
  filter: ['th', 'td'],
  replacement: (content, node) => ((node as HTMLElement).previousElementSibling ? ' | ' : '') + content.replace(/\s+/g, ' ').trim(),
});
service.addRule('tableRow', { filter: 'tr', replacement: (content) => `\n${content}\n` });

/** A code block fenced with more backticks than any run inside it (as turndown does for <pre><code>). */
function fence(code: string): string {
  const longest = Math.max(2, ...[...code.matchAll(/^`{3,}/gm)].map((m) => m[0].length));
  const marks = '`'.repeat(longest + 1);
  return `\n\n${marks}\n${code.replace(/\n$/, '')}\n${marks}\n\n`;
}

/**
 * An HTML post body as Markdown text. Carriage returns become line feeds everywhere, code
 * included ("\r\n" and a lone "\r", as HTML parsing does); entities are decoded and a no-break
 * space becomes a plain space; trailing spaces and runs of blank lines outside code fences are
 * removed; the result is trimmed. Never throws on malformed HTML (the HTML parser recovers as
 * browsers do).
 */
export function htmlToText(html: string): string {
  const markdown = service.turndown(html.replace(/\r\n?/g, '\n'));
  return tidy(markdown.replace(/\u00a0/g, ' '));
}

/** Trailing spaces off each line, at most one blank line in a row, trimmed; code inside fences is kept as written. */
function tidy(text: string): string {
  const out: string[] = [];
  let openFence: string | undefined;
  let blank = 0;
  for (const rawLine of text.split('\n')) {
    // Fences may sit inside list items and quotes ("  ```", "> ```").
    const marks = /^[ \t>]*(`{3,})/.exec(rawLine)?.[1];
    const isFence = marks !== undefined && (openFence === undefined || marks === openFence);
    if (openFence !== undefined && !isFence) {
      out.push(rawLine);
      blank = 0;
      continue;
    }
    if (isFence) openFence = openFence === undefined ? marks : undefined;
    const line = rawLine.replace(/[ \t]+$/, '');
    if (line === '') {
      if (++blank > 1) continue;
    } else blank = 0;
    out.push(line);
  }
  return out.join('\n').trim();
}
