// The native checkpoint format, one checkpoint per epoch: checkpoints/<run>/epoch-NN/ with
// weights, config.json, tokenizer.json, any extra files (optimizer state for --resume) and
// manifest.json, which holds the sha256 of every other file and the content hash of the
// weights (hash.ts). The directory is built aside and renamed into place, so a crash never
// leaves a half checkpoint; loading verifies every hash.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeDirAtomic, cleanStaleTemps } from '../util/atomic.ts';
import { sha256File } from '../util/hash.ts';
import { saveWeights, loadWeights, checkWeights, type NamedWeights } from '../model/weights.ts';
import { validateModelConfig, type ModelConfig } from '../model/config.ts';
import { tokenizerHash, weightsHash } from './hash.ts';
import { checkFiniteTensors } from './finite.ts';

export interface CheckpointManifest {
  epoch: number;
  step: number;
  trainLoss: number;
  dataHash: string;
  configHash: string;
  backend: string;
  /** sha256 of every file in the checkpoint but the manifest itself. */
  files: Record<string, string>;
  /**
   * weightsHash(config, weights) (hash.ts): the checkpoint's content identity. Absent in
   * checkpoints written before it existed; loading computes it for those.
   */
  weightsHash?: string;
  time: string;
  /** Anything else the trainer records (tokens/s, trimmed count, lr, ...). */
  extra?: Record<string, unknown>;
}

export interface CheckpointContent {
  model: ModelConfig;
  weights: NamedWeights;
  /** Hugging Face tokenizer.json content. */
  tokenizer: unknown;
  /** Extra binary/text files (e.g. optimizer.bin) keyed by file name. */
  extraFiles?: Record<string, Uint8Array | string>;
}

export interface LoadedCheckpoint {
  dir: string;
  manifest: CheckpointManifest;
  model: ModelConfig;
  weights: NamedWeights;
  tokenizer: unknown;
  /**
   * Content hash of the model config and weights, weightsHash() in hash.ts (64 hex chars):
   * the same for the same weights whenever, wherever and in whatever layout they were written,
   * so results keyed by it survive a rewrite of identical weights. It does not cover the
   * tokenizer (see tokenizerHash), the epoch or the training metadata. Verified against the
   * manifest's weightsHash on load; computed from the weights for older checkpoints without it.
   */
  hash: string;
  /** Content hash of tokenizer.json (tokenizerHash in hash.ts): the tokenizer's identity. */
  tokenizerHash: string;
}

export function epochDirName(epoch: number): string {
  return `epoch-${String(epoch).padStart(2, '0')}`;
}

export async function writeCheckpoint(
  runDir: string,
  content: CheckpointContent,
  meta: Omit<CheckpointManifest, 'files' | 'time' | 'weightsHash'>,
): Promise<string> {
  const target = path.join(runDir, epochDirName(meta.epoch));
  await writeDirAtomic(target, async (tmp) => {
    await saveWeights(tmp, content.weights);
    await fs.writeFile(path.join(tmp, 'config.json'), JSON.stringify(content.model, null, 2) + '\n');
    await fs.writeFile(path.join(tmp, 'tokenizer.json'), JSON.stringify(content.tokenizer));
    for (const [name, data] of Object.entries(content.extraFiles ?? {})) {
      await fs.writeFile(path.join(tmp, name), data);
    }
    const files: Record<string, string> = {};
    for (const name of (await fs.readdir(tmp)).sort()) files[name] = await sha256File(path.join(tmp, name));
    const manifest: CheckpointManifest = { ...meta, files, weightsHash: weightsHash(content.model, content.weights), time: new Date().toISOString() };
    await fs.writeFile(path.join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  });
  return target;
}

/** Verifies every file's hash against the manifest; throws a clear message naming the file. */
export async function verifyCheckpoint(dir: string): Promise<CheckpointManifest> {
  const manifestPath = path.join(dir, 'manifest.json');
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(await fs.readFile(manifestPath, 'utf8')) as CheckpointManifest;
  } catch (err) {
    throw new Error(`checkpoint ${dir} is incomplete or corrupted: cannot read manifest.json (${(err as Error).message})`);
  }
  for (const [name, expected] of Object.entries(manifest.files ?? {})) {
    let actual: string;
    try {
      actual = await sha256File(path.join(dir, name));
    } catch {
      throw new Error(`checkpoint ${dir} is corrupted: ${name} is missing`);
    }
    if (actual !== expected) {
      throw new Error(`checkpoint ${dir} is corrupted: sha256 of ${name} is ${actual.slice(0, 12)}..., manifest says ${expected.slice(0, 12)}...`);
    }
  }
  return manifest;
}

/**
 * Loads and verifies a checkpoint: every file's sha256, the config, the weights' names and
 * shapes, and the weights' content hash against the manifest's (when it has one). Throws a
 * message naming the checkpoint dir and the file or hash that failed.
 */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const manifest = await verifyCheckpoint(dir);
  const model = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as ModelConfig;
  validateModelConfig(model, `${dir}/config.json`);
  const weights = await loadWeights(dir);
  checkWeights(weights, model);
  checkFiniteTensors(weights, () => path.join(dir, 'weights.bin'));
  const tokenizer = JSON.parse(await fs.readFile(path.join(dir, 'tokenizer.json'), 'utf8')) as unknown;
  const hash = weightsHash(model, weights);
  if (manifest.weightsHash !== undefined && manifest.weightsHash !== hash) {
    throw new Error(`checkpoint ${dir} is corrupted: the weights' content hash is ${hash.slice(0, 12)}..., manifest.json says ${String(manifest.weightsHash).slice(0, 12)}...`);
  }
  return { dir, manifest, model, weights, tokenizer, hash, tokenizerHash: tokenizerHash(tokenizer) };
}

/** Complete checkpoints of a run (those with a manifest), sorted by epoch. Stale temp dirs are removed. */
export async function listCheckpoints(runDir: string): Promise<Array<{ epoch: number; dir: string }>> {
  await cleanStaleTemps(runDir);
  let names: string[];
  try {
    names = await fs.readdir(runDir);
  } catch {
    return [];
  }
  const out: Array<{ epoch: number; dir: string }> = [];
  for (const name of names) {
    const m = /^epoch-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = path.join(runDir, name);
    try {
      await fs.access(path.join(dir, 'manifest.json'));
    } catch {
      continue;
    }
    out.push({ epoch: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.epoch - b.epoch);
}
