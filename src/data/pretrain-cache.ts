// A study's pretraining text, gathered once per run: documents from files (pretrain-text.ts),
// WordNet plain-English texts, and the builtin dataset's own pretraining texts, with file
// documents that repeat a held-out or dev question dropped. Reading 40 MB of Stack Exchange
// XML through turndown takes a while, so the result is kept in the run's data directory and
// reused while the files, the settings and the excluded questions are the same.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ChatRecord } from './types.ts';
import { readPretrainText, type PretrainFormat, type PretrainSource } from './pretrain-text.ts';
import { buildWordnetDataset } from './builtin-wordnet.ts';
import { promptOf } from './prepare.ts';
import { DataError, readJsonLines } from './readers.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { sha256, sha256File, stableHash } from '../util/hash.ts';

const CACHE_VERSION = 1;

export interface PretrainTextOptions {
  sources: Array<{ path: string; format?: string }>;
  /** WordNet plain texts to add (0 = none). */
  wordnetTexts: number;
  /** The builtin dataset's pretraining texts (already disjoint from its sets), added as they are. */
  builtinTexts: string[];
  /** Held-out and dev records: a file document repeating one of their questions is dropped. */
  exclude: ChatRecord[];
  seed: number;
  /** Where the gathered text is cached (the run's data directory). */
  cacheDir: string;
}

export interface PretrainText {
  /** In order: file documents (config order), WordNet texts, builtin texts. */
  documents: string[];
  /** Recorded with the base: where the text came from, and its dependency on the evaluation questions. */
  provenance: {
    files: Array<{ path: string; format: PretrainFormat; documents: number; dropped: number; skipped: Record<string, number> }>;
    wordnetTexts: number;
    builtinTexts: number;
    /** File documents dropped because their title (or first line) is a held-out or dev question. */
    dropped: number;
    /** sha256 of the sorted normalised titles that caused a drop (the titles are in the run's data directory). */
    droppedTitlesHash: string;
    characters: number;
  };
}

async function fingerprint(source: { path: string; format?: string }): Promise<Record<string, unknown>> {
  try {
    const stat = await fs.stat(source.path);
    return { path: path.resolve(source.path), format: source.format ?? null, size: stat.size, mtimeMs: stat.mtimeMs };
  } catch (err) {
    throw new DataError(`train.base.sources: ${source.path}: cannot read the pretraining file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * The pretraining documents for `options`, from the cache when its key matches (the files' size
 * and mtime, the settings, the builtin texts and the excluded questions), else read afresh.
 * Throws DataError naming the file (and line) of unreadable input.
 */
export async function collectPretrainText(options: PretrainTextOptions): Promise<PretrainText> {
  const questions = options.exclude.map(promptOf);
  const key = stableHash({
    version: CACHE_VERSION,
    files: await Promise.all(options.sources.map(fingerprint)),
    wordnetTexts: options.wordnetTexts,
    seed: options.wordnetTexts > 0 ? options.seed : null,
    builtin: sha256(options.builtinTexts.join('\u0000')),
    questions: sha256(questions.join('\u0000')),
  });
  const docsFile = path.join(options.cacheDir, 'pretrain-documents.jsonl');
  const metaFile = path.join(options.cacheDir, 'pretrain-documents.json');
  try {
    const meta = JSON.parse(await fs.readFile(metaFile, 'utf8')) as { key: string; sha256: string; provenance: PretrainText['provenance'] };
    if (meta.key === key && (await sha256File(docsFile)) === meta.sha256) {
      const documents = (await readJsonLines<{ text: string }>(docsFile)).map((r) => r.text);
      return { documents, provenance: meta.provenance };
    }
  } catch {
    // no cache yet (or a stale one): read the sources
  }

  const read = options.sources.length > 0
    ? await readPretrainText(options.sources.map((s) => ({ path: s.path, ...(s.format ? { format: s.format as PretrainFormat } : {}) }) as PretrainSource), { questions })
    : { documents: [], sources: [], dropped: 0, droppedTitles: [] as string[] };
  const wordnet = options.wordnetTexts > 0 ? (await buildWordnetDataset(options.seed, { train: 0, heldout: 0, dev: 0 }, options.wordnetTexts)).pretrain : [];
  const documents = [...read.documents.map((d) => d.text), ...wordnet, ...options.builtinTexts];
  const provenance: PretrainText['provenance'] = {
    files: read.sources.map((s) => ({ ...s, path: path.relative(process.cwd(), s.path) || s.path })),
    wordnetTexts: wordnet.length,
    builtinTexts: options.builtinTexts.length,
    dropped: read.dropped,
    droppedTitlesHash: sha256(read.droppedTitles.join('\n')),
    characters: documents.reduce((a, d) => a + d.length, 0),
  };
  const body = documents.map((text) => JSON.stringify({ text })).join('\n') + (documents.length ? '\n' : '');
  await writeFileAtomic(docsFile, body);
  await writeFileAtomic(path.join(options.cacheDir, 'pretrain-dropped-titles.txt'), read.droppedTitles.join('\n') + (read.droppedTitles.length ? '\n' : ''));
  // The meta file last: it vouches for the documents file by its hash.
  await writeFileAtomic(metaFile, JSON.stringify({ key, sha256: sha256(body), provenance }, null, 2) + '\n');
  return { documents, provenance };
}
