// The tokenizer of a loaded checkpoint, whatever its format: evaluation, `generate` and
// `perplexity` all read it here.
import path from 'node:path';
import type { LoadedCheckpoint } from '../checkpoint/index.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';

/**
 * `ck.tokenizer` as our byte-level BPE. Only tokenizers this harness wrote (its checkpoints, or
 * `export --format hf`) are read for now; a foreign one (GPT-2's, SentencePiece, ...) needs
 * @huggingface/tokenizers in evaluation, not built yet. Throws naming `dir` and why.
 */
export function checkpointTokenizer(ck: Pick<LoadedCheckpoint, 'tokenizer'>, dir: string): BpeTokenizer {
  try {
    return BpeTokenizer.fromJSON(ck.tokenizer, path.join(dir, 'tokenizer.json'));
  } catch (err) {
    throw new Error(
      `checkpoint ${dir}: tokenizer.json is not a lima-harness tokenizer (only tokenizers written by lima-harness, e.g. by \`export --format hf\`, are supported for now; other tokenizers are not yet): ${(err as Error).message}`,
    );
  }
}
