// When a checkpoint a trainer is still writing may be read (--watch): its files are complete
// (what the readers need is there, its JSON parses, and every weights file is as long as its
// header says: src/checkpoint/completeness.ts) and stable (the names, sizes and modification
// times of every file in the folder unchanged between two polls a few seconds apart). Trainers
// write checkpoint folders in place, file by file (Hugging Face's Trainer: config.json, the
// weights, the tokenizer, optimizer.pt, ..., trainer_state.json), so presence alone is not
// enough, and stability alone is not either: a writer pausing longer than the poll interval
// leaves a file stable but short. Its length against its header's tensor data end catches that.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { weightsWaitingFor } from './completeness.ts';
import { parsePythonJson } from './json.ts';

export interface FolderState {
  /** Every file the readers need is there and its JSON parses. */
  complete: boolean;
  /** What it still waits for when not complete (for the status line), e.g. "config.json". */
  waitingFor?: string;
  /** Name, size and mtime of every entry (one level deep): equal on two polls = stable. */
  signature: string;
}

/** Whether a path exists (any kind). */
export const exists = (file: string): Promise<boolean> => fs.access(file).then(() => true, () => false);

/** Parsed JSON (Python's NaN / Infinity accepted, json.ts), or undefined while the file is missing or not complete JSON yet. */
export async function readJsonIfComplete(file: string): Promise<unknown> {
  try {
    return parsePythonJson(await fs.readFile(file, 'utf8'), file);
  } catch {
    return undefined;
  }
}

async function signatureOf(target: string): Promise<string> {
  const stat = await fs.stat(target);
  if (!stat.isDirectory()) return `${stat.size}:${stat.mtimeMs}`;
  const names = (await fs.readdir(target)).sort();
  const parts: string[] = [];
  for (const name of names) {
    try {
      const s = await fs.stat(path.join(target, name));
      parts.push(`${name}:${s.isDirectory() ? 'dir' : s.size}:${s.mtimeMs}`);
    } catch {
      parts.push(`${name}:gone`); // removed between readdir and stat: changing
    }
  }
  return parts.join('|');
}

/**
 * Whether the checkpoint at `target` (a folder, or a single-file checkpoint such as a GGUF file)
 * has every file its reader needs:
 * - lima-harness folders: manifest.json (written last; the folder is renamed into place);
 * - Hugging Face folders: config.json, and model.safetensors or model.safetensors.index.json
 *   with every shard its weight_map names, each safetensors file as long as its header says;
 *   and trainer_state.json (the Trainer writes it last) when the folder is named
 *   checkpoint-<step> (the Trainer's layout) or when `requireTrainerState` (set by the watch
 *   when the series' other checkpoints have one);
 * - files (GGUF): as long as their header says (the end of the last tensor's data).
 * waitingFor then says what is missing, e.g. "model.safetensors (1000 of 5000 bytes)".
 * Never throws for a half-written folder; a missing `target` is reported as not complete.
 */
export async function folderState(target: string, options: { requireTrainerState?: boolean } = {}): Promise<FolderState> {
  let signature: string;
  try {
    signature = await signatureOf(target);
  } catch {
    return { complete: false, waitingFor: 'the folder', signature: 'missing' };
  }
  const stat = await fs.stat(target);
  const waiting = (what: string): FolderState => ({ complete: false, waitingFor: what, signature });
  if (!stat.isDirectory()) {
    const short = await weightsWaitingFor(target, 'gguf');
    return short === undefined ? { complete: true, signature } : waiting(short);
  }
  const file = (name: string) => path.join(target, name);
  if (await exists(file('manifest.json'))) {
    return (await readJsonIfComplete(file('manifest.json'))) === undefined ? waiting('manifest.json') : { complete: true, signature };
  }
  if ((await readJsonIfComplete(file('config.json'))) === undefined) return waiting('config.json');
  if (await exists(file('model.safetensors'))) {
    const short = await weightsWaitingFor(file('model.safetensors'), 'safetensors');
    if (short !== undefined) return waiting(`model.safetensors (${short})`);
  } else {
    const index = (await readJsonIfComplete(file('model.safetensors.index.json'))) as { weight_map?: Record<string, unknown> } | undefined;
    if (index === undefined) return waiting('model.safetensors (or model.safetensors.index.json)');
    const shards = [...new Set(Object.values(index.weight_map ?? {}).filter((v): v is string => typeof v === 'string'))].sort();
    const missing: string[] = [];
    for (const shard of shards) if (!(await exists(file(shard)))) missing.push(shard);
    if (shards.length === 0) return waiting('model.safetensors.index.json with a weight_map');
    if (missing.length > 0) return waiting(`${missing.length} of ${shards.length} shards (${missing[0]}${missing.length > 1 ? ', ...' : ''})`);
    for (const shard of shards) {
      const short = await weightsWaitingFor(file(shard), 'safetensors');
      if (short !== undefined) return waiting(`${shard} (${short})`);
    }
  }
  if ((isTrainerCheckpointName(target) || (options.requireTrainerState && !/^checkpoint-0+$/.test(path.basename(target)))) && (await readJsonIfComplete(file('trainer_state.json'))) === undefined) return waiting('trainer_state.json');
  return { complete: true, signature };
}

/** Whether a folder is named as the Hugging Face Trainer names its checkpoints: checkpoint-<step>. */
export function isTrainerCheckpointName(dir: string): boolean {
  // checkpoint-0 is a base model a user copies in: the Trainer never writes it, nor its trainer_state.json.
  return /^checkpoint-\d+$/.test(path.basename(dir)) && !/^checkpoint-0+$/.test(path.basename(dir));
}

/**
 * Tracks folders over polls: a folder is ready once it was complete with the same signature on
 * two consecutive observations, and stays ready (its later changes are not followed) unless
 * `failed` is called: then it waits until its files change, and counts again once complete and
 * stable.
 */
export class StabilityTracker {
  private readonly last = new Map<string, string>();
  private readonly ready = new Set<string>();
  /** Signature a ready folder had when reading it failed. */
  private readonly failedAt = new Map<string, string>();

  /** Observes `target` once; returns whether it is ready and, when not, what it waits for. */
  async observe(target: string, options: { requireTrainerState?: boolean } = {}): Promise<{ ready: boolean; waitingFor?: string }> {
    if (this.ready.has(target)) return { ready: true };
    const state = await folderState(target, options);
    const before = this.last.get(target);
    this.last.set(target, state.signature);
    const failed = this.failedAt.get(target);
    if (failed !== undefined) {
      if (failed === state.signature) return { ready: false, waitingFor: 'its files to change (reading it failed)' };
      this.failedAt.delete(target);
    }
    if (!state.complete) return { ready: false, waitingFor: state.waitingFor };
    if (before !== state.signature) return { ready: false, waitingFor: 'its files to stop changing' };
    this.ready.add(target);
    return { ready: true };
  }

  isReady(target: string): boolean {
    return this.ready.has(target);
  }

  /** Reading a ready folder failed: it is no longer ready, and is observed again once its files change. */
  async failed(target: string): Promise<void> {
    this.ready.delete(target);
    const { signature } = await folderState(target);
    this.last.set(target, signature);
    this.failedAt.set(target, signature);
  }
}

/** trainer_state.json's `max_steps` (the step of a Trainer's last checkpoint), if the folder has one. */
export async function trainerMaxSteps(dir: string): Promise<number | undefined> {
  const state = (await readJsonIfComplete(path.join(dir, 'trainer_state.json'))) as { max_steps?: unknown } | undefined;
  const max = state?.max_steps;
  return typeof max === 'number' && Number.isInteger(max) && max > 0 ? max : undefined;
}

/** Whether a folder of the series has a trainer_state.json (then every HF folder must have one to be complete). */
export async function hasTrainerState(dir: string): Promise<boolean> {
  return exists(path.join(dir, 'trainer_state.json'));
}
