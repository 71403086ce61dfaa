// A checkpoint series someone else's trainer wrote (issue 13): the folders of one run, each a
// checkpoint in Hugging Face layout (checkpoint-<step>/ with config.json, model.safetensors,
// tokenizer.json, trainer_state.json) or in ours (epoch-NN/ with manifest.json), placed on the
// axis the analysis calls the epoch.
//
// A folder's position is trainer_state.json's `epoch` (fractional when the trainer saved by
// steps), else its step (`global_step`, else the number in `checkpoint-<step>`). Its generation
// seeds derive from its step, so they stay when checkpoints are added. Our own folders keep
// our runs' convention: position and seed key are the manifest's epoch. GGUF files (one file per
// checkpoint: epoch-3.gguf, checkpoint-500.gguf, model-step1200-Q8_0.gguf) carry no trainer
// state: position, step and seed key come from the step or epoch in the file name (ggufPlace).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parsePythonJson } from './json.ts';

export type SeriesFormat = 'hf' | 'native' | 'gguf' | 'auto';

/** Where the series is: exactly one of dir (its checkpoint subfolders and .gguf files) or glob (wildcards in the last path component only). */
export interface SeriesSpec {
  dir?: string;
  glob?: string;
  format: SeriesFormat;
}

/** What the trainer logged up to a checkpoint (the analysis stage's TrainerLog shape). */
export interface TrainerLogged {
  /** The last training `loss` logged at or before the checkpoint's step; null if none. */
  loss: number | null;
  /** The last `eval_loss` logged at or before the checkpoint's step; null if none. */
  evalLoss: number | null;
  step: number;
}

export interface SeriesCheckpoint {
  /** The checkpoint's folder, or its file for GGUF. */
  dir: string;
  format: 'hf' | 'native' | 'gguf';
  /** What analysis calls the epoch: trainer_state.json's epoch, else the step (GGUF: the epoch, else step in the file name, ggufPlace). */
  position: number;
  /** What `position` counts: 'epoch' (trainer_state.json's epoch, our manifest's epoch, an epoch in a GGUF name) or 'step' (the trainer's step, a step or bare number in a GGUF name). */
  positionUnit: PositionUnit;
  /** The trainer's step (our manifest's step for native folders). */
  step: number;
  /** The label generation seeds derive from: the step (HF, GGUF), the epoch (ours, as in our own runs). */
  seedKey: number;
  /** Training loss for the analysis' trainLoss column: the trainer's last logged loss (HF), the manifest's (ours); null when none was logged (always for GGUF). */
  trainLoss: number | null;
  /** HF folders with a trainer_state.json only. */
  trainer?: TrainerLogged;
}

/** What a checkpoint's position counts: trainer epochs (HF trainer_state.json's epoch, our manifests, epoch-N.gguf) or optimizer steps. */
export type PositionUnit = 'epoch' | 'step';

/**
 * The unit of a whole series' positions: the checkpoints' common positionUnit, or 'position'
 * when they mix epochs and steps (the axis is then neither).
 */
export function seriesPositionUnit(series: ReadonlyArray<Pick<SeriesCheckpoint, 'positionUnit'>>): PositionUnit | 'position' {
  const units = new Set(series.map((c) => c.positionUnit));
  return units.size === 1 ? [...units][0]! : 'position';
}

const exists = (file: string) => fs.access(file).then(() => true, () => false);

/** trainer_state.json and manifest.json: JSON, with Python's NaN / Infinity / -Infinity accepted (json.ts). */
async function readJson(file: string): Promise<unknown> {
  return parsePythonJson(await fs.readFile(file, 'utf8'), file);
}

/** Which format a folder is in, or undefined when it is no checkpoint at all. */
async function folderFormat(dir: string): Promise<'hf' | 'native' | undefined> {
  if (await exists(path.join(dir, 'manifest.json'))) return 'native';
  if (await exists(path.join(dir, 'config.json'))) return 'hf';
  return undefined;
}

/** Whether a directory entry's name is a GGUF file's (".gguf", any case). */
export function isGgufName(name: string): boolean {
  return name.toLowerCase().endsWith('.gguf');
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

/**
 * The checkpoints a spec names, sorted by name: folders, and .gguf files (a matching or listed
 * file of another kind is ignored); `where` names the config key in errors.
 */
export async function seriesFolders(spec: SeriesSpec, where: string): Promise<Array<{ dir: string; explicit: boolean }>> {
  if (spec.glob !== undefined) {
    const parent = path.dirname(spec.glob);
    const last = path.basename(spec.glob);
    if (/[*?]/.test(parent)) throw new Error(`${where}.glob: wildcards only in the last path component, got ${JSON.stringify(spec.glob)}`);
    let names: string[];
    try {
      names = await fs.readdir(parent);
    } catch (err) {
      throw new Error(`${where}.glob: cannot list ${parent} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const re = globToRegExp(last);
    const dirs: Array<{ dir: string; explicit: boolean }> = [];
    for (const name of names.filter((n) => re.test(n)).sort()) {
      const dir = path.join(parent, name);
      const stat = await fs.stat(dir);
      if (stat.isDirectory() || (stat.isFile() && isGgufName(name))) dirs.push({ dir, explicit: true });
    }
    return dirs;
  }
  const root = spec.dir!;
  let entries;
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new Error(`${where}.dir: cannot list ${root} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return entries
    .filter((e) => e.isDirectory() || (e.isFile() && isGgufName(e.name)))
    .map((e) => e.name)
    .sort()
    .map((name) => ({ dir: path.join(root, name), explicit: false }));
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

type Placed = Omit<SeriesCheckpoint, 'dir' | 'format' | 'positionUnit'> & { unit: PositionUnit };

/** Position, step and logged losses of an HF folder (trainer_state.json when present). */
async function placeHf(dir: string): Promise<Placed> {
  const stateFile = path.join(dir, 'trainer_state.json');
  const fromName = /^checkpoint-(\d+)$/.exec(path.basename(dir));
  const nameStep = fromName ? Number(fromName[1]) : undefined;
  if (!(await exists(stateFile))) {
    if (nameStep === undefined) {
      throw new Error(`${dir}: no trainer_state.json and the folder is not named checkpoint-<step>: cannot place it in the series`);
    }
    return { position: nameStep, step: nameStep, seedKey: nameStep, trainLoss: null, unit: 'step' };
  }
  const state = (await readJson(stateFile)) as Record<string, unknown> | null;
  if (state === null || typeof state !== 'object' || Array.isArray(state)) throw new Error(`${stateFile}: expected a JSON object`);
  if (state.epoch !== undefined && state.epoch !== null && num(state.epoch) === undefined) throw new Error(`${stateFile}: epoch: expected a number, got ${JSON.stringify(state.epoch)}`);
  if (state.global_step !== undefined && (num(state.global_step) === undefined || !Number.isInteger(state.global_step) || (state.global_step as number) < 0)) {
    throw new Error(`${stateFile}: global_step: expected a non-negative integer, got ${JSON.stringify(state.global_step)}`);
  }
  const step = num(state.global_step) ?? nameStep;
  if (step === undefined) throw new Error(`${stateFile}: no global_step, and the folder is not named checkpoint-<step>: cannot place it in the series`);
  const epoch = num(state.epoch);
  if (epoch !== undefined && epoch < 0) throw new Error(`${stateFile}: epoch: expected a non-negative number, got ${epoch}`);
  let loss: number | null = null;
  let evalLoss: number | null = null;
  if (state.log_history !== undefined) {
    if (!Array.isArray(state.log_history)) throw new Error(`${stateFile}: log_history: expected an array`);
    // Entries in logged order; the last at or before this checkpoint's step wins. A NaN or
    // Infinity logged there (a diverged run; Python writes NaN) makes the value null rather than
    // leaving an older finite one standing as if it were current: the eval_loss rule then has no
    // value for that checkpoint instead of a stale one.
    const logged = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
    for (const entry of state.log_history as unknown[]) {
      const e = entry as Record<string, unknown> | null;
      const at = num(e?.step);
      if (at === undefined || at > step) continue;
      if (typeof e!.loss === 'number') loss = logged(e!.loss);
      if (typeof e!.eval_loss === 'number') evalLoss = logged(e!.eval_loss);
    }
  }
  return { position: epoch ?? step, step, seedKey: step, trainLoss: loss, trainer: { loss, evalLoss, step }, unit: epoch !== undefined ? 'epoch' : 'step' };
}

/** A trailing ggml type token in a GGUF file name: -F16, .Q8_0, _Q4_K_M, -BF16, -IQ2_XXS, any case. */
const GGML_TYPE_SUFFIX = /[-._](?:BF|F|IQ|Q)\d\w*$/i;
/** A number named by its meaning: checkpoint-500, step1200, step_3, epoch-2, epoch0.5, ckpt-7. */
const KEYWORD_NUMBER = /(checkpoint|ckpt|step|epoch)[-_]?(\d+(?:\.\d+)?)/gi;
const NAMING_HELP = 'name GGUF files by step (checkpoint-500.gguf, model-step1200-Q8_0.gguf) or epoch (epoch-3.gguf, epoch-2-step-500.gguf)';

/**
 * Where a GGUF file sits in its series, from its file name (they carry no trainer state):
 * 1. ".gguf" and a trailing ggml type token (-F16, -Q8_0, .Q4_K_M, -BF16, ...) are dropped;
 * 2. numbers after "checkpoint", "ckpt", "step" or "epoch" (with "-", "_" or nothing between)
 *    name the step or the epoch: step-N / checkpoint-N / ckpt-N give position, step and seed key
 *    N; epoch-E gives position E (may be fractional: epoch-0.5) and, when E is an integer, step
 *    and seed key E; epoch-E-step-N gives position E, step and seed key N;
 * 3. otherwise the name's only run of digits is position, step and seed key (model-7.gguf).
 * Generation seeds derive from the seed key, which depends on this file's name only, so they
 * stay when files are added. Returns undefined when the name has no number at all; throws naming
 * the file when it is ambiguous (two runs of digits and no keyword, a keyword twice, both step
 * and checkpoint), a step is fractional, or an epoch is fractional with no step to seed by
 * (rounding it would give two checkpoints one seed).
 */
export function ggufPlace(file: string): { position: number; step: number; seedKey: number } | undefined {
  const placed = placeGguf(file);
  if (placed === undefined) return undefined;
  const { unit: _unit, ...place } = placed;
  return place;
}

/** ggufPlace with the unit of the position: 'epoch' when the name has an epoch number, else 'step'. */
function placeGguf(file: string): { position: number; step: number; seedKey: number; unit: PositionUnit } | undefined {
  const name = path.basename(file);
  const stem = name.replace(/\.gguf$/i, '').replace(GGML_TYPE_SUFFIX, '');
  const found = new Map<string, string>();
  for (const m of stem.matchAll(KEYWORD_NUMBER)) {
    const key = m[1]!.toLowerCase() === 'epoch' ? 'epoch' : 'step';
    if (found.has(key)) throw new Error(`${file}: the file name has two ${key === 'epoch' ? 'epoch' : 'step (step/checkpoint/ckpt)'} numbers (${found.get(key)} and ${m[2]}): ${NAMING_HELP}`);
    found.set(key, m[2]!);
  }
  const stepText = found.get('step');
  const epochText = found.get('epoch');
  if (stepText !== undefined && !/^\d+$/.test(stepText)) throw new Error(`${file}: step ${stepText} in the file name is not a whole number: ${NAMING_HELP}`);
  if (stepText !== undefined) {
    const step = Number(stepText);
    return { position: epochText !== undefined ? Number(epochText) : step, step, seedKey: step, unit: epochText !== undefined ? 'epoch' : 'step' };
  }
  if (epochText !== undefined) {
    const epoch = Number(epochText);
    if (!Number.isInteger(epoch)) {
      throw new Error(`${file}: epoch ${epochText} is fractional and the name has no step to seed generations by (rounding would give two checkpoints one seed): add the step, e.g. epoch-${epochText}-step-500.gguf, or ${NAMING_HELP}`);
    }
    return { position: epoch, step: epoch, seedKey: epoch, unit: 'epoch' };
  }
  const runs = stem.match(/\d+/g) ?? [];
  if (runs.length === 0) return undefined;
  if (runs.length > 1) {
    throw new Error(`${file}: the file name has ${runs.length} numbers (${runs.join(', ')}) and none is marked as the step or epoch: ${NAMING_HELP}`);
  }
  const n = Number(runs[0]);
  return { position: n, step: n, seedKey: n, unit: 'step' };
}

/** What a GGUF file's position (ggufPlace) counts: 'epoch' when its name has an epoch number, else 'step'. */
export function ggufPositionUnit(file: string): PositionUnit {
  return placeGguf(file)?.unit ?? 'step';
}

async function placeNative(dir: string): Promise<Placed> {
  const file = path.join(dir, 'manifest.json');
  const m = (await readJson(file)) as { epoch?: unknown; step?: unknown; trainLoss?: unknown };
  const epoch = num(m?.epoch);
  if (epoch === undefined || epoch < 0) throw new Error(`${file}: epoch: expected a non-negative number, got ${JSON.stringify(m?.epoch)}`);
  return { position: epoch, step: num(m.step) ?? epoch, seedKey: epoch, trainLoss: num(m.trainLoss) ?? null, unit: 'epoch' };
}

/**
 * The checkpoints of a series, ascending by position. With `dir`, its subfolders that are
 * checkpoints (config.json or manifest.json) and its .gguf files are taken and others skipped;
 * with `glob`, every matching folder must be one (matching files other than .gguf are ignored).
 * A checkpoint in another format than `format` (unless auto), checkpoints of two formats or
 * placed in two units (epoch vs step, checkOneKind), two at one position, GGUF files
 * whose names carry no number (all named), or an empty series is an error naming the folders,
 * files or key (`where`, e.g. "experiments/x.json: checkpoints"). `include` (--watch: the
 * checkpoints complete and stable so far, src/checkpoint/watch.ts) leaves every other one unread.
 */
export async function listSeries(spec: SeriesSpec, where: string, include?: (dir: string) => boolean): Promise<SeriesCheckpoint[]> {
  const out: Array<Omit<SeriesCheckpoint, 'positionUnit'> & { unit: PositionUnit }> = [];
  const unnumbered: string[] = [];
  for (const { dir, explicit } of await seriesFolders(spec, where)) {
    if (include && !include(dir)) continue;
    if (isGgufName(dir) && (await fs.stat(dir)).isFile()) {
      if (spec.format !== 'auto' && spec.format !== 'gguf') throw new Error(`${dir}: a GGUF file, but ${where}.format is ${JSON.stringify(spec.format)}`);
      const place = placeGguf(dir);
      if (place === undefined) unnumbered.push(dir);
      else out.push({ dir, format: 'gguf', ...place, trainLoss: null });
      continue;
    }
    const format = await folderFormat(dir);
    if (format === undefined) {
      if (explicit) throw new Error(`${dir}: neither a Hugging Face checkpoint (config.json) nor a lima-harness one (manifest.json) (matched by ${where}.glob)`);
      continue;
    }
    if (spec.format !== 'auto' && format !== spec.format) {
      throw new Error(`${dir}: a ${format === 'hf' ? 'Hugging Face' : 'lima-harness (native)'} checkpoint, but ${where}.format is ${JSON.stringify(spec.format)}`);
    }
    out.push({ dir, format, ...(format === 'hf' ? await placeHf(dir) : await placeNative(dir)) });
  }
  if (unnumbered.length > 0) {
    throw new Error(
      `${where}: GGUF file name${unnumbered.length > 1 ? 's' : ''} without a number: ${unnumbered.join(', ')}: a GGUF series is placed by the step or epoch in each file name: ${NAMING_HELP}`,
    );
  }
  if (out.length === 0) throw new Error(`${where}: no checkpoints (folders or .gguf files) found in ${spec.glob !== undefined ? `glob ${spec.glob}` : `dir ${spec.dir}`}`);
  checkOneKind(out, where);
  out.sort((a, b) => a.position - b.position || a.step - b.step);
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.position === out[i - 1]!.position) {
      const rule = out[i]!.format === 'gguf' && out[i - 1]!.format === 'gguf' ? 'the step or epoch in the GGUF file name' : 'epoch from trainer_state.json, else step; GGUF: the step or epoch in the file name';
      throw new Error(`${out[i - 1]!.dir} and ${out[i]!.dir}: both at position ${out[i]!.position} (${rule}): a series needs one checkpoint per position`);
    }
  }
  const seriesUnit = out.find((c) => c.position !== 0)?.unit;
  return out.map(({ unit, ...c }) => ({ ...c, positionUnit: c.position === 0 && seriesUnit !== undefined ? seriesUnit : unit }));
}

const FORMAT_NAMES: Record<SeriesCheckpoint['format'], string> = { hf: 'Hugging Face folders', native: 'lima-harness folders', gguf: 'GGUF files' };

/** Lists groups as "<label>: a, b, c" (at most 5 names each, then "and N more"). */
function describeGroups<K extends string>(groups: Map<K, string[]>, label: (key: K) => string): string {
  return [...groups]
    .map(([key, dirs]) => `${label(key)}: ${dirs.slice(0, 5).join(', ')}${dirs.length > 5 ? ` and ${dirs.length - 5} more` : ''}`)
    .join('; ');
}

/**
 * A series is one run: its checkpoints in one format, placed in one unit. Positions of an HF
 * folder with trainer_state.json (epochs) and of one without (steps), or of epoch-3.gguf and
 * checkpoint-500.gguf, are not on one axis, and one format's checkpoints beside another's are two
 * runs (or an export beside its source). Throws naming the checkpoints of each kind and why.
 */
function checkOneKind(out: Array<Omit<SeriesCheckpoint, 'positionUnit'> & { unit: PositionUnit }>, where: string): void {
  const byFormat = new Map<SeriesCheckpoint['format'], string[]>();
  for (const c of out) byFormat.set(c.format, [...(byFormat.get(c.format) ?? []), c.dir]);
  if (byFormat.size > 1) {
    throw new Error(
      `${where}: mixed formats in one series (${describeGroups(byFormat, (f) => FORMAT_NAMES[f])}): a series is the checkpoints of one run in one format: select one kind (a glob such as checkpoint-* or *.gguf, or format "hf", "gguf" or "native")`,
    );
  }
  const byUnit = new Map<PositionUnit, string[]>();
  // Position 0 (a base model copied in as checkpoint-0, which the Trainer never gives a
  // trainer_state.json) is the same point in epochs and in steps.
  for (const c of out) if (c.position !== 0) byUnit.set(c.unit, [...(byUnit.get(c.unit) ?? []), c.dir]);
  if (byUnit.size > 1) {
    const gguf = out[0]!.format === 'gguf';
    const rule = gguf ? 'a GGUF file is placed by the epoch in its name, else its step' : "an HF folder is placed by trainer_state.json's epoch, else its step (no trainer_state.json, or no epoch in it)";
    const fix = gguf ? 'name every file by epoch (epoch-2-step-500.gguf) or every file by step' : 'give every folder a trainer_state.json with its epoch, or select only one kind';
    throw new Error(`${where}: mixed position units (epoch vs step) in one series (${describeGroups(byUnit, (u) => `by ${u}`)}): ${rule}, and epochs and steps are not one axis: ${fix}`);
  }
}
