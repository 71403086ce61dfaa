// What evaluation needs from a checkpoint besides its weights (weights hash, model config,
// tokenizer), remembered in memory per checkpoint path and file signature, so that a process
// evaluating a growing series again and again (--watch: one round per new checkpoint) reads and
// hashes each checkpoint's weights once rather than once per round. The signature is the size and
// mtime of the file, or of every file one level deep in the folder: any rewrite drops the entry.
// Tokenizers are kept once per tokenizerHash (a series shares one), so an entry is small.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../model/config.ts';
import type { LoadedCheckpoint } from './native.ts';

/** A LoadedCheckpoint without its weights. */
export type CheckpointSummary = Pick<LoadedCheckpoint, 'dir' | 'hash' | 'tokenizer' | 'tokenizerHash'> & {
  model: ModelConfig;
  manifest: { extra?: Record<string, unknown> };
};

interface Entry {
  signature: string;
  hash: string;
  model: ModelConfig;
  tokenizerHash: string;
  extra?: Record<string, unknown>;
}

const entries = new Map<string, Entry>();
const tokenizers = new Map<string, unknown>();

/** Size and mtime of `target`, or of every entry one level deep when it is a folder; undefined when it is gone. */
async function signature(target: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(target);
    if (!stat.isDirectory()) return `${stat.size}:${stat.mtimeMs}`;
    const parts: string[] = [];
    for (const name of (await fs.readdir(target)).sort()) {
      const s = await fs.stat(path.join(target, name));
      parts.push(`${name}:${s.isDirectory() ? 'dir' : s.size}:${s.mtimeMs}`);
    }
    return parts.join('|');
  } catch {
    return undefined;
  }
}

/** The remembered summary of the checkpoint at `dir` if its files are as they were when it was loaded, else undefined. */
export async function cachedCheckpointSummary(dir: string): Promise<CheckpointSummary | undefined> {
  const entry = entries.get(dir);
  if (!entry || !tokenizers.has(entry.tokenizerHash)) return undefined;
  if ((await signature(dir)) !== entry.signature) {
    entries.delete(dir);
    return undefined;
  }
  return { dir, hash: entry.hash, model: entry.model, tokenizer: tokenizers.get(entry.tokenizerHash), tokenizerHash: entry.tokenizerHash, manifest: { extra: entry.extra } };
}

/**
 * Remembers `ck` (just loaded from `dir`) under the signature `before` its files had when the
 * load started; nothing is remembered when they changed during the load.
 */
export async function rememberCheckpointSummary(dir: string, before: string | undefined, ck: LoadedCheckpoint): Promise<void> {
  if (before === undefined || (await signature(dir)) !== before) return;
  entries.set(dir, { signature: before, hash: ck.hash, model: ck.model, tokenizerHash: ck.tokenizerHash, extra: ck.manifest.extra });
  tokenizers.set(ck.tokenizerHash, ck.tokenizer);
}

/** The signature to pass to rememberCheckpointSummary, taken before loading. */
export const checkpointSignature = signature;
