// Builds a study's train / held-out / dev sets (and pretraining texts for the builtin dataset)
// into a directory of JSONL files with a manifest. Reruns with the same inputs reuse the files
// without re-reading the sources.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ChatRecord } from './types.ts';
import { DataError, DATA_FORMATS, isSingleTurn, readRecords, type DataFormat } from './readers.ts';
import { buildWordnetDataset } from './builtin-wordnet.ts';
import { normalizeQuestion } from './normalize.ts';
import { ConfigError, expectBoolean, expectNumber, expectObject, expectString } from '../util/validate.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { sha256, sha256File, stableHash } from '../util/hash.ts';
import { deriveSeed, mulberry32, shuffleInPlace } from '../util/rng.ts';

/**
 * Bump when the selection, the readers' output (3: Stack Exchange bodies through turndown) or
 * the file format changes, so old prepared data is rebuilt.
 */
const PREPARE_VERSION = 3;

export interface DataSource {
  path: string;
  format?: DataFormat;
}

export interface DataConfig {
  /** The embedded dataset; a set that has sources below replaces the builtin's (its pretraining text stays). */
  builtin?: 'wordnet';
  train: DataSource[];
  heldout: DataSource[];
  dev: DataSource[];
  counts: { train: number; heldout: number; dev: number };
  pretrainTexts: number;
  singleTurnOnly: boolean;
  skipInvalid: boolean;
}

export interface PreparedData {
  dir: string;
  train: string;
  heldout: string;
  dev: string;
  pretrain?: string;
  counts: { train: number; heldout: number; dev: number; pretrain?: number };
  hash: string;
}

interface Manifest {
  version: number;
  inputsKey: string;
  counts: PreparedData['counts'];
  hash: string;
  files: Record<string, string>;
  /** How many held-out/dev candidates were dropped as duplicates of train prompts (for the report). */
  removedAsTrainDuplicates?: number;
}

const DATA_KEYS = ['builtin', 'train', 'heldout', 'dev', 'counts', 'pretrainTexts', 'singleTurnOnly', 'skipInvalid'] as const;

export function validateDataConfig(raw: unknown, where: string): DataConfig {
  const obj = expectObject(raw, where, DATA_KEYS);
  const sources = (key: 'train' | 'heldout' | 'dev'): DataSource[] => {
    const value = obj[key];
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw new ConfigError(`${where}.${key}: expected an array of { "path", "format"? } sources`);
    return value.map((item, i) => {
      const at = `${where}.${key}[${i}]`;
      if (typeof item === 'string') return { path: expectString(item, at) };
      const src = expectObject(item, at, ['path', 'format']);
      const source: DataSource = { path: expectString(src.path, `${at}.path`) };
      if (src.format !== undefined) source.format = expectString(src.format, `${at}.format`, DATA_FORMATS) as DataFormat;
      return source;
    });
  };
  const countsRaw = obj.counts === undefined ? {} : expectObject(obj.counts, `${where}.counts`, ['train', 'heldout', 'dev']);
  const count = (key: 'train' | 'heldout' | 'dev', fallback: number) =>
    countsRaw[key] === undefined ? fallback : expectNumber(countsRaw[key], `${where}.counts.${key}`, { min: 1, integer: true });
  const config: DataConfig = {
    train: sources('train'),
    heldout: sources('heldout'),
    dev: sources('dev'),
    counts: { train: count('train', 1000), heldout: count('heldout', 2000), dev: count('dev', 50) },
    pretrainTexts: obj.pretrainTexts === undefined ? 4000 : expectNumber(obj.pretrainTexts, `${where}.pretrainTexts`, { min: 0, integer: true }),
    singleTurnOnly: obj.singleTurnOnly === undefined ? true : expectBoolean(obj.singleTurnOnly, `${where}.singleTurnOnly`),
    skipInvalid: obj.skipInvalid === undefined ? false : expectBoolean(obj.skipInvalid, `${where}.skipInvalid`),
  };
  if (obj.builtin !== undefined && obj.builtin !== null) {
    // Sources given for a set replace that builtin set only (e.g. your own held-out data).
    config.builtin = expectString(obj.builtin, `${where}.builtin`, ['wordnet']) as 'wordnet';
  } else {
    for (const key of ['train', 'heldout', 'dev'] as const) {
      if (config[key].length === 0) throw new ConfigError(`${where}.${key}: expected at least one source (or set "builtin": "wordnet")`);
    }
  }
  return config;
}

/** Read a JSONL file; errors name file:line. */
export { readJsonLines as readJsonl } from './readers.ts';

export { normalizeQuestion };

/** A record's first user turn (its question). */
export function promptOf(record: ChatRecord): string {
  return record.turns.find((t) => t.role === 'user')?.content ?? '';
}

/**
 * Keys a record is compared on: its normalised first line (an SE title), its whole normalised
 * prompt, and the rest after the first line (the SE body). LIMA's SE-derived prompts sometimes
 * carry an edited title or the body alone, so bodies are compared too (when long enough to be
 * distinctive).
 */
type QuestionKeys = { firstLine: string; whole: string; body: string };

function questionKeys(record: ChatRecord): QuestionKeys {
  const prompt = promptOf(record);
  const newline = prompt.indexOf('\n');
  const body = newline < 0 ? '' : normalizeQuestion(prompt.slice(newline + 1));
  return { firstLine: normalizeQuestion(newline < 0 ? prompt : prompt.slice(0, newline)), whole: normalizeQuestion(prompt), body: body.length >= MIN_BODY_CHARS ? body : '' };
}

const MIN_BODY_CHARS = 30;

class QuestionIndex {
  private readonly firstLines = new Set<string>();
  /** Whole prompts and bodies: a body may equal another record's whole prompt. */
  private readonly texts = new Set<string>();
  add(k: QuestionKeys): void {
    if (k.firstLine) this.firstLines.add(k.firstLine);
    if (k.whole) this.texts.add(k.whole);
    if (k.body) this.texts.add(k.body);
  }
  has(k: QuestionKeys): boolean {
    return (k.firstLine !== '' && this.firstLines.has(k.firstLine)) || this.texts.has(k.whole) || (k.body !== '' && this.texts.has(k.body));
  }
}

async function sourceFingerprint(source: DataSource): Promise<{ path: string; format?: string; size: number; mtimeMs: number }> {
  try {
    const stat = await fs.stat(source.path);
    return { path: path.resolve(source.path), format: source.format, size: stat.size, mtimeMs: stat.mtimeMs };
  } catch (err) {
    throw new DataError(`${source.path}: cannot read the data source (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

async function inputsKeyOf(config: DataConfig, seed: number): Promise<string> {
  const fingerprints = await Promise.all([...config.train, ...config.heldout, ...config.dev].map(sourceFingerprint));
  return stableHash({ version: PREPARE_VERSION, config, seed, fingerprints });
}

async function reuse(outDir: string, inputsKey: string): Promise<PreparedData | undefined> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await fs.readFile(path.join(outDir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
  if (manifest.inputsKey !== inputsKey || manifest.version !== PREPARE_VERSION) return undefined;
  for (const [name, hash] of Object.entries(manifest.files)) {
    try {
      if ((await sha256File(path.join(outDir, name))) !== hash) return undefined;
    } catch {
      return undefined;
    }
  }
  return describePrepared(outDir, manifest.counts, manifest.hash);
}

function describePrepared(dir: string, counts: PreparedData['counts'], hash: string): PreparedData {
  const prepared: PreparedData = {
    dir,
    train: path.join(dir, 'train.jsonl'),
    heldout: path.join(dir, 'heldout.jsonl'),
    dev: path.join(dir, 'dev.jsonl'),
    counts,
    hash,
  };
  if (counts.pretrain !== undefined) prepared.pretrain = path.join(dir, 'pretrain.jsonl');
  return prepared;
}

interface Selected {
  train: ChatRecord[];
  heldout: ChatRecord[];
  dev: ChatRecord[];
  pretrain?: string[];
  removedAsTrainDuplicates: number;
}

export async function prepareData(config: DataConfig, seed: number, outDir: string): Promise<PreparedData> {
  const inputsKey = await inputsKeyOf(config, seed);
  const reused = await reuse(outDir, inputsKey);
  if (reused) return reused;

  let selected: Selected;
  if (config.builtin === 'wordnet') {
    const built = await buildWordnetDataset(seed, config.counts, config.pretrainTexts);
    const pretrain = config.pretrainTexts > 0 ? built.pretrain : undefined;
    const replacesSome = config.train.length + config.heldout.length + config.dev.length > 0;
    selected = replacesSome ? { ...(await selectFromSources(config, seed, built)), pretrain } : { ...built, pretrain, removedAsTrainDuplicates: 0 };
  } else {
    selected = await selectFromSources(config, seed);
  }

  const toJsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
  const contents: Record<string, string> = {
    'train.jsonl': toJsonl(selected.train),
    'heldout.jsonl': toJsonl(selected.heldout),
    'dev.jsonl': toJsonl(selected.dev),
  };
  if (selected.pretrain) contents['pretrain.jsonl'] = toJsonl(selected.pretrain.map((text) => ({ text })));
  const files: Record<string, string> = {};
  for (const [name, text] of Object.entries(contents)) {
    await writeFileAtomic(path.join(outDir, name), text);
    files[name] = sha256(text);
  }
  const hash = stableHash({ train: files['train.jsonl'], heldout: files['heldout.jsonl'], dev: files['dev.jsonl'] });
  const counts: PreparedData['counts'] = { train: selected.train.length, heldout: selected.heldout.length, dev: selected.dev.length };
  if (selected.pretrain) counts.pretrain = selected.pretrain.length;
  const manifest: Manifest = { version: PREPARE_VERSION, inputsKey, counts, hash, files, removedAsTrainDuplicates: selected.removedAsTrainDuplicates };
  // The manifest goes last: its presence means every file above is complete.
  await writeFileAtomic(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return describePrepared(outDir, counts, hash);
}

/**
 * Draws each set from its sources; with `builtin`, a set without sources is the builtin's (as
 * drawn, not reshuffled) and goes through the same deduplication as a drawn one.
 */
async function selectFromSources(config: DataConfig, seed: number, builtin?: Record<'train' | 'heldout' | 'dev', ChatRecord[]>): Promise<Selected> {
  const cache = new Map<string, Promise<ChatRecord[]>>();
  const read = (source: DataSource): Promise<ChatRecord[]> => {
    const key = `${path.resolve(source.path)}\u0000${source.format ?? ''}`;
    let pending = cache.get(key);
    if (!pending) {
      pending = readRecords(source.path, { format: source.format, skipInvalid: config.skipInvalid }).then((r) =>
        config.singleTurnOnly ? r.records.filter(isSingleTurn) : r.records,
      );
      cache.set(key, pending);
    }
    return pending;
  };
  const pool = async (sources: DataSource[]): Promise<ChatRecord[]> => {
    const all: ChatRecord[] = [];
    for (const source of sources) all.push(...(await read(source)));
    return all;
  };
  const names = (sources: DataSource[]) => (sources.length === 0 && builtin ? `builtin ${config.builtin}` : sources.map((s) => path.relative(process.cwd(), s.path) || s.path).join(', '));
  const draw = async (key: 'train' | 'heldout' | 'dev'): Promise<ChatRecord[]> =>
    builtin && config[key].length === 0 ? builtin[key].slice() : shuffleInPlace(await pool(config[key]), mulberry32(deriveSeed(seed, 'data', key)));
  const tooSmall = (label: string, asked: number, available: number, sources: DataSource[], how: string) =>
    new DataError(`${label}: asked for ${asked} examples but the sources give only ${available}${how} (${names(sources)})`);

  const trainPool = await draw('train');
  if (trainPool.length < config.counts.train) {
    throw tooSmall('training set', config.counts.train, trainPool.length, config.train, config.singleTurnOnly ? ' single-turn records' : ' records');
  }
  const train = trainPool.slice(0, config.counts.train);
  const trainIndex = new QuestionIndex();
  for (const record of train) trainIndex.add(questionKeys(record));
  let removedAsTrainDuplicates = 0;

  /** Drop duplicates of train prompts and of records already kept (in `seen`). */
  const dedupe = (records: ChatRecord[], seen: QuestionIndex): ChatRecord[] => {
    const kept: ChatRecord[] = [];
    for (const record of records) {
      const keys = questionKeys(record); // normalising is the costly part: once per record
      if (trainIndex.has(keys)) {
        removedAsTrainDuplicates++;
        continue;
      }
      if (seen.has(keys)) continue;
      seen.add(keys);
      kept.push(record);
    }
    return kept;
  };
  const how = ' after deduplication';
  const sameLists = config.heldout.length > 0 && stableHash(config.heldout.map((s) => [path.resolve(s.path), s.format ?? ''])) === stableHash(config.dev.map((s) => [path.resolve(s.path), s.format ?? '']));
  let dev: ChatRecord[];
  let heldout: ChatRecord[];
  if (sameLists) {
    // The real study draws dev and held-out from the same Stack Exchange files: pool once.
    const pooled = dedupe(shuffleInPlace(await pool(config.heldout), mulberry32(deriveSeed(seed, 'data', 'heldout+dev'))), new QuestionIndex());
    if (pooled.length < config.counts.dev) throw tooSmall('dev set', config.counts.dev, pooled.length, config.dev, how);
    dev = pooled.slice(0, config.counts.dev);
    const rest = pooled.slice(config.counts.dev);
    if (rest.length < config.counts.heldout) throw tooSmall('held-out set', config.counts.heldout, rest.length, config.heldout, `${how} and setting aside ${config.counts.dev} dev examples`);
    heldout = rest.slice(0, config.counts.heldout);
  } else {
    const seen = new QuestionIndex();
    const devPool = dedupe(await draw('dev'), seen);
    if (devPool.length < config.counts.dev) throw tooSmall('dev set', config.counts.dev, devPool.length, config.dev, how);
    dev = devPool.slice(0, config.counts.dev);
    // Held-out excludes every chosen dev question (and train, and its own duplicates).
    const heldSeen = new QuestionIndex();
    for (const record of dev) heldSeen.add(questionKeys(record));
    const heldPool = dedupe(await draw('heldout'), heldSeen);
    if (heldPool.length < config.counts.heldout) throw tooSmall('held-out set', config.counts.heldout, heldPool.length, config.heldout, `${how} against train and dev`);
    heldout = heldPool.slice(0, config.counts.heldout);
  }
  return { train, heldout, dev, removedAsTrainDuplicates };
}
