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
  base: { kind: 'scratch' } | { kind: 'checkpoint'; path: string } | { kind: 'pretrain'; epochs: number; batchSize: number; lr: number; maxLength: number };
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
    base = {
      kind: 'pretrain',
      epochs: num(b, 'epochs', w, posInt, 'a positive integer'),
      batchSize: num(b, 'batchSize', w, posInt, 'a positive integer'),
      lr: num(b, 'lr', w, pos, 'a positive number'),
      maxLength: num(b, 'maxLength', w, (v) => posInt(v) && v >= 2, 'an integer >= 2'),
    };
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
