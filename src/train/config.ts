// Training hyper-parameters: the LIMA recipe as defaults, validated with errors naming the key.
export interface TrainConfig {
  epochs: number;              // 15
  batchSize: number;           // 32 (64 for smaller models)
  lr: number; lrEnd: number;   // 1e-5 -> 1e-6 linear decay, no warm-up
  lrScale: number;             // multiplies lr and lrEnd (small models trained from scratch); recorded
  weightDecay: number;         // 0.1, decoupled (AdamW)
  beta1: number; beta2: number; eps: number;
  dropoutBottom: number; dropoutTop: number;
  maxLength: number;
  backend: 'auto' | 'ort' | 'tensorflow' | 'wasm' | 'cpu'; // auto: tfjs-node-gpu with a GPU, else ort
  threads: number | 'auto';    // 'ort' engine's threads; auto = every core
  base: { kind: 'scratch' } | { kind: 'checkpoint'; path: string } | PretrainBaseConfig;
}

/**
 * A base pretrained on general text before the fine-tune (LIMA's setting). Its identity is
 * (pretraining text, tokenizer, model, this schedule, seed, engine): studies that share those
 * share the base under checkpoints/bases/<hash>/, whatever their train, held-out and dev sets.
 */
export interface PretrainBaseConfig {
  kind: 'pretrain';
  /** Passes over the pretraining sequences (the last may be cut short by `steps`). */
  epochs: number;
  /** Optimizer steps in all; absent = epochs x steps per epoch. */
  steps?: number;
  batchSize: number;
  /** Peak learning rate, reached after `warmupSteps` (linear), then linear decay to `lrEnd`. */
  lr: number;
  /** Final learning rate; default lr / 10. */
  lrEnd?: number;
  warmupSteps: number;
  /** Tokens per packed pretraining sequence (documents joined with <|endoftext|>). */
  maxLength: number;
  /** Files of general text: Stack Exchange Posts.xml, plain text, JSONL {"text"} (src/data/pretrain-text.ts). */
  sources: Array<{ path: string; format?: string }>;
  /** WordNet plain-English texts added to the sources (a builtin-data study also gets data.pretrainTexts). */
  wordnetTexts: number;
  /** Share of documents held back for the base's validation loss, in [0, 0.5). */
  validation: number;
  /** Minutes between resumable mid-way checkpoints. */
  checkpointMinutes: number;
}

export const defaultTrainConfig: TrainConfig = {
  epochs: 15, batchSize: 32, lr: 1e-5, lrEnd: 1e-6, lrScale: 1, weightDecay: 0.1,
  beta1: 0.9, beta2: 0.95, eps: 1e-8, dropoutBottom: 0.0, dropoutTop: 0.3,
  maxLength: 128, backend: 'auto', threads: 'auto', base: { kind: 'scratch' },
};

function num(o: Record<string, unknown>, key: string, where: string, check: (v: number) => boolean, rule: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) {
    throw new Error(`${where}.${key}: expected ${rule}, got ${JSON.stringify(v)}`);
  }
  return v;
}
const posInt = (v: number) => Number.isInteger(v) && v > 0;
const pos = (v: number) => v > 0;
const nonNeg = (v: number) => v >= 0;
const unit = (v: number) => v >= 0 && v < 1;

/** Fills missing keys from defaults, rejects unknown keys and bad values. */
export function validateTrainConfig(c: unknown, where: string): TrainConfig {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error(`${where}: expected an object`);
  const o = { ...defaultTrainConfig, ...(c as Record<string, unknown>) } as Record<string, unknown>;
  for (const k of Object.keys(c)) if (!(k in defaultTrainConfig)) throw new Error(`${where}.${k}: unknown key`);
  const backend = o.backend;
  if (backend !== 'auto' && backend !== 'ort' && backend !== 'tensorflow' && backend !== 'wasm' && backend !== 'cpu') {
    throw new Error(`${where}.backend: expected auto|ort|tensorflow|wasm|cpu, got ${JSON.stringify(backend)}`);
  }
  const threads = o.threads === 'auto' ? 'auto' : num(o, 'threads', where, posInt, 'a positive integer or "auto"');
  const b = o.base as Record<string, unknown> | null;
  let base: TrainConfig['base'];
  if (typeof b !== 'object' || b === null) throw new Error(`${where}.base: expected an object with kind`);
  if (b.kind === 'scratch') base = { kind: 'scratch' };
  else if (b.kind === 'checkpoint') {
    if (typeof b.path !== 'string' || b.path === '') throw new Error(`${where}.base.path: expected a non-empty string`);
    base = { kind: 'checkpoint', path: b.path };
  } else if (b.kind === 'pretrain') {
    const w = `${where}.base`;
    const known = ['kind', 'epochs', 'steps', 'batchSize', 'lr', 'lrEnd', 'warmupSteps', 'maxLength', 'sources', 'wordnetTexts', 'validation', 'checkpointMinutes'];
    for (const k of Object.keys(b)) if (!known.includes(k)) throw new Error(`${w}.${k}: unknown key (expected ${known.join(', ')})`);
    const optional = (key: string, fallback: number, check: (v: number) => boolean, rule: string) => (b[key] === undefined ? fallback : num(b, key, w, check, rule));
    const rawSources = b.sources ?? [];
    if (!Array.isArray(rawSources)) throw new Error(`${w}.sources: expected an array of { "path", "format"? }`);
    const sources = rawSources.map((item: unknown, i: number) => {
      const at = `${w}.sources[${i}]`;
      const src = typeof item === 'string' ? { path: item } : (item as Record<string, unknown>);
      if (typeof src !== 'object' || src === null || typeof src.path !== 'string' || src.path === '') throw new Error(`${at}.path: expected a non-empty string`);
      for (const k of Object.keys(src)) if (k !== 'path' && k !== 'format') throw new Error(`${at}.${k}: unknown key (expected path, format)`);
      if (src.format !== undefined && !['se-xml', 'text', 'jsonl'].includes(src.format as string)) throw new Error(`${at}.format: expected se-xml|text|jsonl, got ${JSON.stringify(src.format)}`);
      return src.format === undefined ? { path: src.path } : { path: src.path, format: src.format as string };
    });
    const lr = num(b, 'lr', w, pos, 'a positive number');
    const pretrain: PretrainBaseConfig = {
      kind: 'pretrain',
      epochs: num(b, 'epochs', w, posInt, 'a positive integer'),
      batchSize: num(b, 'batchSize', w, posInt, 'a positive integer'),
      lr,
      warmupSteps: optional('warmupSteps', 0, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0'),
      maxLength: num(b, 'maxLength', w, (v) => posInt(v) && v >= 2, 'an integer >= 2'),
      sources,
      wordnetTexts: optional('wordnetTexts', 0, (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0'),
      validation: optional('validation', 0.02, (v) => v >= 0 && v < 0.5, 'a share in [0, 0.5)'),
      checkpointMinutes: optional('checkpointMinutes', 5, pos, 'a positive number of minutes'),
    };
    if (b.steps !== undefined) pretrain.steps = num(b, 'steps', w, posInt, 'a positive integer');
    if (b.lrEnd !== undefined) {
      pretrain.lrEnd = num(b, 'lrEnd', w, nonNeg, 'a number >= 0');
      if (pretrain.lrEnd > lr) throw new Error(`${w}.lrEnd: ${pretrain.lrEnd} is larger than lr ${lr} (decay only)`);
    }
    base = pretrain;
  } else throw new Error(`${where}.base.kind: expected scratch|checkpoint|pretrain, got ${JSON.stringify(b.kind)}`);
  const cfg: TrainConfig = {
    epochs: num(o, 'epochs', where, posInt, 'a positive integer'),
    batchSize: num(o, 'batchSize', where, posInt, 'a positive integer'),
    lr: num(o, 'lr', where, pos, 'a positive number'),
    lrEnd: num(o, 'lrEnd', where, nonNeg, 'a number >= 0'),
    lrScale: num(o, 'lrScale', where, pos, 'a positive number'),
    weightDecay: num(o, 'weightDecay', where, nonNeg, 'a number >= 0'),
    beta1: num(o, 'beta1', where, unit, 'a number in [0, 1)'),
    beta2: num(o, 'beta2', where, unit, 'a number in [0, 1)'),
    eps: num(o, 'eps', where, pos, 'a positive number'),
    dropoutBottom: num(o, 'dropoutBottom', where, unit, 'a number in [0, 1)'),
    dropoutTop: num(o, 'dropoutTop', where, unit, 'a number in [0, 1)'),
    maxLength: num(o, 'maxLength', where, (v) => posInt(v) && v >= 2, 'an integer >= 2'),
    backend, threads, base,
  };
  if (cfg.lrEnd > cfg.lr) throw new Error(`${where}.lrEnd: ${cfg.lrEnd} is larger than lr ${cfg.lr} (decay only)`);
  return cfg;
}
