// The experiment config: one JSON file in experiments/ describes a whole study. Sections the
// file leaves out take the LIMA defaults; unknown keys and wrong types are errors naming the key.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ConfigError, expectObject, expectNumber, expectString } from '../util/validate.ts';
import { stripBom } from '../util/text.ts';
import { validateModelConfig, type ModelConfig } from '../model/config.ts';
import { validateDataConfig, type DataConfig } from '../data/prepare.ts';
import { defaultTrainConfig, validateTrainConfig, type TrainConfig } from '../train/config.ts';
import { defaultEvalConfig, validateEvalConfig, type EvalConfig } from '../eval/config.ts';
import { defaultJudgeConfig, validateJudgeConfig, type JudgeConfig } from '../judge/index.ts';
import type { SeriesSpec } from '../checkpoint/index.ts';
import { DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_MAX_UNDEFINED_SHARE } from '../analysis/types.ts';

export interface AnalysisConfig {
  /** Inclusive epoch window the selection picks from (LIMA: 5..10). */
  window: [number, number];
  /** Bootstrap resamples for confidence intervals and selection stability. */
  bootstrap: number;
  /** Level of the percentile bootstrap intervals, strictly between 0 and 1 (0.95). */
  confidence: number;
  /** The summary states a direction only if the two-sided permutation p is below this, and the interval excludes 0 (0.05). */
  alpha: number;
  /** An interval is marked unreliable when more than this share of resamples left its statistic undefined (0.05). */
  maxUndefinedShare: number;
}

export interface ExperimentConfig {
  name: string;
  description?: string;
  seed: number;
  data: DataConfig;
  tokenizer: { vocabSize: number };
  /** The model's shape; its vocabulary size comes from the tokenizer. Absent with `checkpoints`. */
  model?: Omit<ModelConfig, 'vocab'>;
  /** Absent with `checkpoints`. */
  train?: TrainConfig;
  /**
   * A checkpoint series trained elsewhere, in place of `model` and `train` (issue 13): the data,
   * evaluation, judging, analysis and report stages run on it unchanged. Paths are resolved
   * against the directory the command runs in.
   */
  checkpoints?: SeriesSpec;
  eval: EvalConfig;
  judge: JudgeConfig;
  analysis: AnalysisConfig;
}

const TOP_KEYS = ['$schema', 'name', 'description', 'seed', 'data', 'tokenizer', 'model', 'train', 'checkpoints', 'eval', 'judge', 'analysis'] as const;

export const defaultAnalysisConfig: AnalysisConfig = {
  window: [5, 10],
  bootstrap: 1000,
  confidence: DEFAULT_CONFIDENCE,
  alpha: DEFAULT_ALPHA,
  maxUndefinedShare: DEFAULT_MAX_UNDEFINED_SHARE,
};

/** Validates a parsed config object; `where` names the file in every error. */
export function validateExperimentConfig(raw: unknown, where: string): ExperimentConfig {
  const obj = expectObject(raw, where, TOP_KEYS);
  const name = expectString(obj.name, `${where}: name`);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ConfigError(`${where}: name must use only letters, digits, '.', '_' and '-' (it names directories), got ${JSON.stringify(name)}`);
  const seed = expectNumber(obj.seed, `${where}: seed`, { integer: true, min: 0 });
  const description = obj.description === undefined ? undefined : expectString(obj.description, `${where}: description`);

  let checkpoints: SeriesSpec | undefined;
  let model: Omit<ModelConfig, 'vocab'> | undefined;
  let vocabSize = 2048;
  if (obj.checkpoints !== undefined) {
    // The series brings its own model and tokenizer (each folder's tokenizer.json).
    for (const key of ['model', 'train', 'tokenizer'] as const) {
      if (obj[key] !== undefined) throw new ConfigError(`${where}: ${key}: not allowed with checkpoints (a checkpoint series brings its own model${key === 'tokenizer' ? ' and tokenizer' : ' and was trained elsewhere'}); remove one of the two`);
    }
    checkpoints = validateCheckpointsSection(obj.checkpoints, `${where}: checkpoints`);
  } else {
    const tokenizerObj = expectObject(obj.tokenizer ?? {}, `${where}: tokenizer`, ['vocabSize']);
    vocabSize = expectNumber(tokenizerObj.vocabSize ?? 2048, `${where}: tokenizer.vocabSize`, { integer: true, min: 262 });

    const modelObj = expectObject(obj.model, `${where}: model`, ['context', 'dModel', 'layers', 'heads']);
    model = {
      context: expectNumber(modelObj.context, `${where}: model.context`, { integer: true, min: 1 }),
      dModel: expectNumber(modelObj.dModel, `${where}: model.dModel`, { integer: true, min: 1 }),
      layers: expectNumber(modelObj.layers, `${where}: model.layers`, { integer: true, min: 1 }),
      heads: expectNumber(modelObj.heads, `${where}: model.heads`, { integer: true, min: 1 }),
    };
    validateModelConfig({ ...model, vocab: vocabSize }, `${where}: model`);
  }

  const analysisObj = expectObject(obj.analysis ?? {}, `${where}: analysis`, ['window', 'bootstrap', 'confidence', 'alpha', 'maxUndefinedShare']);
  const windowRaw = analysisObj.window ?? defaultAnalysisConfig.window;
  if (!Array.isArray(windowRaw) || windowRaw.length !== 2) throw new ConfigError(`${where}: analysis.window must be [first, last] epochs`);
  // Positions in an imported series may be fractional (checkpoints saved by steps).
  const window: [number, number] = [
    expectNumber(windowRaw[0], `${where}: analysis.window[0]`, checkpoints ? { min: 0 } : { integer: true, min: 1 }),
    expectNumber(windowRaw[1], `${where}: analysis.window[1]`, checkpoints ? { min: 0 } : { integer: true, min: 1 }),
  ];
  if (window[0] > window[1]) throw new ConfigError(`${where}: analysis.window [${window}] is empty (first > last)`);
  const bootstrap = expectNumber(analysisObj.bootstrap ?? defaultAnalysisConfig.bootstrap, `${where}: analysis.bootstrap`, { integer: true, min: 10 });
  // undefined, not null, takes the default: a null is a mistake worth naming.
  const given = (key: 'confidence' | 'alpha' | 'maxUndefinedShare') => (analysisObj[key] === undefined ? defaultAnalysisConfig[key] : analysisObj[key]);
  const openShare = (key: 'confidence' | 'alpha') => {
    const v = expectNumber(given(key), `${where}: analysis.${key}`);
    if (v <= 0 || v >= 1) throw new ConfigError(`${where}: analysis.${key}: must be strictly between 0 and 1, got ${v}`);
    return v;
  };
  const confidence = openShare('confidence');
  const alpha = openShare('alpha');
  const maxUndefinedShare = expectNumber(given('maxUndefinedShare'), `${where}: analysis.maxUndefinedShare`, { min: 0, max: 1 });

  const train = checkpoints ? undefined : validateTrainConfig({ ...defaultTrainConfig, ...expectObject(obj.train ?? {}, `${where}: train`) }, `${where}: train`);
  if (model && train && train.base.kind === 'pretrain' && model.context < train.base.maxLength) {
    throw new ConfigError(`${where}: train.base.maxLength (${train.base.maxLength}) exceeds model.context (${model.context})`);
  }
  if (model && train && model.context < train.maxLength) {
    throw new ConfigError(`${where}: train.maxLength (${train.maxLength}) exceeds model.context (${model.context})`);
  }
  const evalRaw = expectObject(obj.eval ?? {}, `${where}: eval`);
  const evalConfig = validateEvalConfig(
    { ...defaultEvalConfig, ...evalRaw, generation: { ...defaultEvalConfig.generation, ...expectObject(evalRaw.generation ?? {}, `${where}: eval.generation`) } },
    `${where}: eval`,
  );
  // The scoring window is the smaller of eval.maxLength and the model's context (an imported
  // series' context is known only when its checkpoints are read: evaluation checks it then).
  const scoringWindow = Math.min(evalConfig.maxLength, model?.context ?? Infinity);
  if (evalConfig.stride !== 'disjoint' && evalConfig.stride > scoringWindow - 1) {
    throw new ConfigError(`${where}: eval.stride (${evalConfig.stride}) must be at most ${scoringWindow - 1}: the scoring window is ${scoringWindow} tokens (the smaller of eval.maxLength and model.context)`);
  }
  const judge = validateJudgeConfig(obj.judge ?? defaultJudgeConfig, `${where}: judge`);
  const data = validateDataConfig(obj.data, `${where}: data`);
  if (data.builtin === 'wordnet' && train?.base.kind === 'pretrain' && train.base.wordnetTexts > 0) {
    // WordNet texts drawn afresh would describe the builtin sets' own word senses (their answers).
    throw new ConfigError(`${where}: train.base.wordnetTexts: the builtin WordNet dataset already gives pretraining text from senses its sets do not use (data.pretrainTexts); set wordnetTexts to 0`);
  }

  return {
    name,
    description,
    seed,
    data,
    tokenizer: { vocabSize },
    ...(model ? { model } : {}),
    ...(train ? { train } : {}),
    ...(checkpoints ? { checkpoints } : {}),
    eval: evalConfig,
    judge,
    analysis: { window, bootstrap, confidence, alpha, maxUndefinedShare },
  };
}

/**
 * `checkpoints`: { "dir": PATH } or { "glob": PATTERN }, and "format": "hf" | "native" | "gguf" |
 * "auto" (default auto: each checkpoint's own, folders by their files, .gguf files as GGUF).
 */
function validateCheckpointsSection(raw: unknown, where: string): SeriesSpec {
  const obj = expectObject(raw, where, ['dir', 'glob', 'format']);
  if ((obj.dir === undefined) === (obj.glob === undefined)) throw new ConfigError(`${where}: give exactly one of dir (the run directory) and glob (e.g. "runs/x/checkpoint-*" or "runs/x/*.gguf")`);
  const format = expectString(obj.format ?? 'auto', `${where}.format`, ['hf', 'native', 'gguf', 'auto']) as SeriesSpec['format'];
  if (obj.dir !== undefined) return { dir: expectString(obj.dir, `${where}.dir`), format };
  const glob = expectString(obj.glob, `${where}.glob`);
  if (/[*?]/.test(glob.split(/[\\/]/).slice(0, -1).join('/'))) throw new ConfigError(`${where}.glob: wildcards (* ?) only in the last path component, got ${JSON.stringify(glob)}`);
  return { glob, format };
}

export async function loadExperimentConfig(file: string): Promise<ExperimentConfig> {
  let text: string;
  try {
    text = stripBom(await fs.readFile(file, 'utf8')); // editors on Windows may add a byte order mark
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the config (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const config = validateExperimentConfig(raw, file);
  // Relative data paths are relative to the directory the command runs in (the project root
  // for `npm run experiment`), as on the command line.
  const resolve = (sources: DataConfig['train']) => sources.map((s) => ({ ...s, path: path.resolve(s.path) }));
  config.data = { ...config.data, train: resolve(config.data.train), heldout: resolve(config.data.heldout), dev: resolve(config.data.dev) };
  if (config.checkpoints) {
    const c = config.checkpoints;
    config.checkpoints = c.dir !== undefined ? { ...c, dir: path.resolve(c.dir) } : { ...c, glob: path.resolve(c.glob!) };
  }
  return config;
}

/**
 * Data paths from the command line (--train, --heldout, --dev; each repeatable) replace the
 * config's for that one set, resolved as the config's own are. With the builtin dataset, the
 * sets not given (and the pretraining text) still come from it.
 */
export function applyDataOverrides(config: ExperimentConfig, values: { train?: string[]; heldout?: string[]; dev?: string[] }): void {
  const sources = (files: string[]) => files.map((f) => ({ path: path.resolve(f) }));
  for (const key of ['train', 'heldout', 'dev'] as const) {
    const files = values[key];
    if (files && files.length > 0) config.data = { ...config.data, [key]: sources(files) };
  }
}

/** The parts of a parseArgs token (`tokens: true`) that strayArgumentError reads. */
interface ArgToken {
  kind: string;
  name?: string;
  rawName?: string;
  value?: string;
}

/**
 * The error for a command-line argument no option takes, or undefined. "--heldout a b" leaves
 * "b" over (parseArgs reads one value per flag): for the data flags, which may be repeated, the
 * message says to repeat the flag.
 */
export function strayArgumentError(tokens: readonly ArgToken[]): string | undefined {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind !== 'positional') continue;
    const previous = tokens[i - 1];
    if (previous?.kind === 'option' && previous.value !== undefined) {
      const flag = previous.rawName ?? `--${previous.name}`;
      if (['train', 'heldout', 'dev'].includes(previous.name ?? '')) {
        return `${flag} takes one file; to give several, repeat the flag: ${flag} ${previous.value} ${flag} ${token.value}`;
      }
      return `${flag} takes one value, got a second: ${JSON.stringify(token.value)}`;
    }
    return `unexpected argument ${JSON.stringify(token.value)}`;
  }
  return undefined;
}
