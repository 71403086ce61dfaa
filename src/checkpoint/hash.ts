// Content hashes of what a checkpoint holds, independent of its format, file layout, directory
// and write time: two checkpoints with the same model config and the same weight values have
// the same weightsHash, whichever format or run wrote them.
import { createHash } from 'node:crypto';
import { stableHash, stableStringify } from '../util/hash.ts';
import { canonicalModelConfig, type ModelConfig } from '../model/config.ts';
import type { NamedWeights } from '../model/weights.ts';

/** Bumped if the byte stream hashed below ever changes (old hashes would no longer match). */
const WEIGHTS_HASH_VERSION = 'lima-harness weights v1';

/**
 * sha256 (hex, 64 chars) of a model's config and weights. The hashed byte stream is
 *   "lima-harness weights v1\n" + canonical JSON of `model` (keys sorted, util/hash.ts) + "\n"
 * (a llama config first gets its defaults filled in and ropeTheta/normEps rounded to float32,
 * canonicalModelConfig in model/config.ts; a gpt2 config is hashed as it is, so gpt2 hashes never moved)
 * then, for every tensor in code-unit order of its name,
 *   canonical JSON of {name, shape, dtype: "float32"} + "\n" + its values as little-endian float32
 * (each tensor's byte length follows from its shape, so the stream is unambiguous). Values are
 * hashed bit for bit: -0 and 0, or two NaN payloads, hash differently. Throws on a big-endian
 * host (as saveWeights does) and on a tensor whose value count does not match its shape.
 */
export function weightsHash(model: ModelConfig, weights: NamedWeights): string {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian hosts are not supported');
  const hash = createHash('sha256');
  hash.update(`${WEIGHTS_HASH_VERSION}\n${stableStringify(canonicalModelConfig(model))}\n`);
  for (const name of [...weights.keys()].sort()) {
    const t = weights.get(name)!;
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) throw new Error(`weights: ${name} has ${t.data.length} values, its shape [${t.shape}] needs ${size}`);
    hash.update(`${stableStringify({ name, shape: t.shape, dtype: 'float32' })}\n`);
    hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return hash.digest('hex');
}

/**
 * sha256 (hex) of a tokenizer's content: its Hugging Face tokenizer.json value as canonical JSON
 * (keys sorted), so whitespace and key order in the file do not matter.
 */
export function tokenizerHash(tokenizer: unknown): string {
  return stableHash(tokenizer);
}
