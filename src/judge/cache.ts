// On-disk judgment cache: one JSON file per key, sharded by the key's first two hex digits.
// The key is a sha256 over everything that decides the judgment (model, template hash,
// prompt, response, reference), so a rerun of a finished study makes no requests and a
// changed template or model re-judges. Nothing secret is ever stored (no key, no headers).
// Entries carry CACHE_VERSION: when the way replies are read changes, the version goes up and
// older entries are ignored (re-judged and overwritten), since they were read the old way.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import { stableHash } from '../util/hash.ts';
import type { Judgment } from './types.ts';

export interface CacheKeyParts {
  model: string;
  templateHash: string;
  prompt: string;
  response: string;
  reference?: string;
}

export function judgmentCacheKey(parts: CacheKeyParts): string {
  return stableHash({ model: parts.model, template: parts.templateHash, prompt: parts.prompt, response: parts.response, reference: parts.reference ?? null });
}

/**
 * Version of the stored judgments. 1: lenient reading (a last standalone digit counted).
 * 2: strict reading with invalidReason, finish_reason "length" -> truncated.
 */
export const CACHE_VERSION = 2;

interface CacheEntry {
  version: typeof CACHE_VERSION;
  key: string;
  model: string;
  templateHash: string;
  judgment: Omit<Judgment, 'cached'>;
}

export class JudgmentCache {
  constructor(readonly dir: string) {}

  fileFor(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  /** The cached judgment, or undefined when absent. A corrupt or older-version entry is treated as absent (it is rewritten). */
  async get(key: string): Promise<Judgment | undefined> {
    let text: string;
    try {
      text = await fs.readFile(this.fileFor(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const entry = JSON.parse(text) as CacheEntry;
      if (entry.version !== CACHE_VERSION || entry.key !== key || typeof entry.judgment?.valid !== 'boolean') return undefined;
      if (!entry.judgment.valid && typeof entry.judgment.invalidReason !== 'string') return undefined;
      return { ...entry.judgment, cached: true };
    } catch {
      return undefined;
    }
  }

  async set(key: string, meta: { model: string; templateHash: string }, judgment: Judgment): Promise<void> {
    const { cached: _cached, ...stored } = judgment;
    const entry: CacheEntry = { version: CACHE_VERSION, key, model: meta.model, templateHash: meta.templateHash, judgment: stored };
    await writeFileAtomic(this.fileFor(key), JSON.stringify(entry) + '\n');
  }
}
