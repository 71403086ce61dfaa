// Stack Exchange post bodies are HTML; the model sees plain text with light Markdown-like
// structure (paragraphs, lists, fenced code, quotes). sax in non-strict mode tolerates the
// messy HTML real posts contain; any parser failure falls back to tag stripping, so this
// function never throws.
import sax from 'sax';

const BLOCK_TAGS = new Set(['p', 'div', 'table', 'hr', 'section', 'article', 'dl', 'figure', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
const HEADINGS: Record<string, number> = { h1: 1, h2: 2, h3: 3, h4: 4, h5: 5, h6: 6 };

interface ListState {
  ordered: boolean;
  next: number;
}

/** A buffer being filled; blockquote and pre collect into their own buffer and are formatted on close. */
interface Frame {
  kind: 'root' | 'blockquote' | 'pre';
  text: string;
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', ndash: '\u2013', mdash: '\u2014',
  hellip: '\u2026', lsquo: '\u2018', rsquo: '\u2019', ldquo: '\u201c', rdquo: '\u201d', copy: '\u00a9',
  reg: '\u00ae', trade: '\u2122', times: '\u00d7', deg: '\u00b0', middot: '\u00b7', bull: '\u2022',
};

/** Decode HTML entities (named, decimal and hex); unknown ones are left as written. */
export function decodeEntities(text: string): string {
  return text.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);/g, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      if (!Number.isFinite(code) || code < 0 || code > 0x10ffff) return whole;
      try {
        return String.fromCodePoint(code);
      } catch {
        return whole;
      }
    }
    const known = NAMED_ENTITIES[name] ?? ((sax as unknown as { ENTITIES: Record<string, string | number> }).ENTITIES)[name];
    if (known === undefined) return whole;
    return typeof known === 'number' ? String.fromCodePoint(known) : known;
  });
}

export function htmlToText(html: string): string {
  try {
    return convert(html);
  } catch {
    // Last resort for input sax cannot cope with: strip tags, decode entities.
    return tidy(decodeEntities(html.replace(/<br\s*\/?>/gi, '\n').replace(/<\/p>/gi, '\n\n').replace(/<[^>]*>/g, '')));
  }
}

function convert(html: string): string {
  const parser = sax.parser(false, { lowercase: true, trim: false, normalize: false });
  const frames: Frame[] = [{ kind: 'root', text: '' }];
  const lists: ListState[] = [];
  let preDepth = 0;
  const top = (): Frame => frames[frames.length - 1]!;
  const atLineStart = (): boolean => top().text === '' || top().text.endsWith('\n');

  const newline = (): void => {
    if (!atLineStart()) top().text += '\n';
  };
  const paragraphBreak = (): void => {
    const frame = top();
    if (frame.text === '') return;
    if (lists.length > 0) return newline(); // inside lists, blocks only start a new line
    frame.text = frame.text.replace(/[ \t]+$/, '');
    if (!frame.text.endsWith('\n\n')) frame.text += frame.text.endsWith('\n') ? '\n' : '\n\n';
  };
  const appendText = (raw: string): void => {
    if (preDepth > 0) {
      top().text += raw;
      return;
    }
    let text = raw.replace(/\s+/g, ' ');
    if (atLineStart() || top().text.endsWith(' ')) text = text.replace(/^ /, '');
    top().text += text;
  };

  parser.onerror = () => {
    // Non-strict mode reports oddities (unquoted attributes, stray '<'); keep going.
    parser.error = null as unknown as Error;
    parser.resume();
  };
  parser.ontext = (t) => appendText(t);
  parser.oncdata = (t) => appendText(t);
  // sax hands <script>/<style> contents over separately; they are post text here (code someone pasted).
  parser.onscript = (t) => appendText(t);
  parser.onopentag = (node) => {
    const tag = node.name;
    if (tag === 'pre') {
      paragraphBreak();
      frames.push({ kind: 'pre', text: '' });
      preDepth++;
    } else if (tag === 'code') {
      if (preDepth === 0) top().text += '`';
    } else if (tag === 'blockquote') {
      paragraphBreak();
      frames.push({ kind: 'blockquote', text: '' });
    } else if (tag === 'ul' || tag === 'ol') {
      if (lists.length === 0) paragraphBreak();
      else newline();
      const start = tag === 'ol' && typeof node.attributes.start === 'string' ? parseInt(node.attributes.start, 10) : 1;
      lists.push({ ordered: tag === 'ol', next: Number.isFinite(start) ? start : 1 });
    } else if (tag === 'li') {
      newline();
      const list = lists[lists.length - 1];
      const indent = '  '.repeat(Math.max(0, lists.length - 1));
      if (list?.ordered) top().text += `${indent}${list.next++}. `;
      else top().text += `${indent}- `;
    } else if (tag === 'img') {
      // Image-only answers are common; keep what the author said the image shows.
      const alt = typeof node.attributes.alt === 'string' ? node.attributes.alt.trim() : '';
      appendText(alt ? `[image: ${alt}]` : '[image]');
    } else if (tag === 'br') {
      top().text = top().text.replace(/ $/, '') + '\n';
    } else if (tag === 'tr' || tag === 'dt' || tag === 'dd') {
      newline();
    } else if (tag === 'td' || tag === 'th') {
      if (!atLineStart()) top().text += ' | ';
    } else if (BLOCK_TAGS.has(tag)) {
      paragraphBreak();
      const level = HEADINGS[tag];
      if (level) top().text += '#'.repeat(level) + ' ';
      if (tag === 'hr') {
        top().text += '---';
        paragraphBreak();
      }
    }
  };
  parser.onclosetag = (tag) => {
    if (tag === 'pre' && top().kind === 'pre') {
      preDepth--;
      const code = frames.pop()!.text.replace(/^\n+/, '').replace(/\s+$/, '');
      paragraphBreak();
      top().text += '```\n' + code + '\n```';
      paragraphBreak();
    } else if (tag === 'code') {
      if (preDepth === 0) top().text += '`';
    } else if (tag === 'blockquote' && top().kind === 'blockquote') {
      const inner = tidy(frames.pop()!.text);
      paragraphBreak();
      top().text += inner
        .split('\n')
        .map((line) => (line === '' ? '>' : `> ${line}`))
        .join('\n');
      paragraphBreak();
    } else if (tag === 'ul' || tag === 'ol') {
      lists.pop();
      if (lists.length === 0) paragraphBreak();
      else newline();
    } else if (BLOCK_TAGS.has(tag)) {
      paragraphBreak();
    }
  };

  // One wrapper root: sax treats anything after a first top-level element as stray text.
  // A '<' that cannot start a tag ("a < b") is text; sax would swallow it as a tag name.
  const escaped = html.replace(/<(?![a-zA-Z/!?])/g, '&lt;');
  parser.write(`<lima-root>${escaped}</lima-root>`).close();
  // Unclosed <pre>/<blockquote> at the end: flush their text into the parent.
  while (frames.length > 1) {
    const frame = frames.pop()!;
    top().text += frame.kind === 'pre' ? '```\n' + frame.text.replace(/\s+$/, '') + '\n```' : frame.text;
  }
  return tidy(top().text);
}

/** Trailing spaces off each line, at most one blank line in a row (outside code fences), trimmed. */
function tidy(text: string): string {
  const out: string[] = [];
  let inFence = false;
  let blank = 0;
  for (const rawLine of text.split('\n')) {
    if (rawLine.startsWith('```')) inFence = !inFence;
    const line = inFence ? rawLine : rawLine.replace(/[ \t\u00a0]+$/, '');
    if (!inFence && line === '') {
      if (++blank > 1) continue;
    } else blank = 0;
    out.push(line);
  }
  return out.join('\n').trim();
}
