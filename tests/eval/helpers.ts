// Fixtures for the eval tests: random GPT weights, a small trained tokenizer, checkpoints and records.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ModelConfig } from '../../src/model/config.ts';
import { weightShapes, type NamedWeights } from '../../src/model/weights.ts';
import { gaussian, mulberry32 } from '../../src/util/rng.ts';
import { BpeTokenizer } from '../../src/data/tokenizer.ts';
import { writeCheckpoint } from '../../src/checkpoint/index.ts';
import type { ChatRecord } from '../../src/data/types.ts';

/** Random weights with a realistic scale (LayerNorm gains near 1), so logits are not flat. */
export function randomWeights(model: ModelConfig, seed: number, scale = 0.3): NamedWeights {
  const rng = mulberry32(seed);
  const weights: NamedWeights = new Map();
  for (const [name, shape] of weightShapes(model)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const base = name.endsWith('gamma') ? 1 : 0;
    for (let i = 0; i < n; i++) data[i] = base + scale * gaussian(rng);
    weights.set(name, { shape, data });
  }
  return weights;
}

export async function tempDir(label: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `lima-eval-${label}-`));
}

const WORDS = ['the', 'model', 'answers', 'a', 'question', 'about', 'cats', 'and', 'dogs', 'with', 'care', 'why', 'is', 'sky', 'blue', 'light', 'scatters', 'in', 'air', 'write', 'poem', 'short', 'long', 'story'];

function sentence(rng: () => number, words: number): string {
  return Array.from({ length: words }, () => WORDS[Math.floor(rng() * WORDS.length)]!).join(' ');
}

/** Chat records [user, assistant] of varied lengths, deterministic in `seed`. */
export function makeRecords(prefix: string, count: number, seed: number): ChatRecord[] {
  const rng = mulberry32(seed);
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${String(i).padStart(3, '0')}`,
    source: 'test',
    turns: [
      { role: 'user' as const, content: sentence(rng, 2 + Math.floor(rng() * 8)) + '?' },
      { role: 'assistant' as const, content: sentence(rng, 3 + Math.floor(rng() * 20)) + '.' },
    ],
  }));
}

export function makeTokenizer(): BpeTokenizer {
  return BpeTokenizer.train(makeRecords('tok', 200, 7).flatMap((r) => r.turns.map((t) => t.content)), 300);
}

/** Writes `epochs` checkpoints with different random weights; returns their list. */
export async function writeCheckpoints(runDir: string, epochs: number, dims: Omit<ModelConfig, 'vocab'> = { context: 64, dModel: 32, layers: 2, heads: 4 }) {
  const tok = makeTokenizer();
  const model: ModelConfig = { vocab: tok.vocabSize, ...dims };
  const list: Array<{ epoch: number; dir: string }> = [];
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const dir = await writeCheckpoint(runDir, { model, weights: randomWeights(model, 100 + epoch, 0.2), tokenizer: tok.toJSON() }, {
      epoch,
      step: epoch * 10,
      trainLoss: 1,
      dataHash: 'test',
      configHash: 'test',
      backend: 'test',
    });
    list.push({ epoch, dir });
  }
  return { list, model, tok };
}
