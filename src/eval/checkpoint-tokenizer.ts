// The tokenizer of a loaded checkpoint, whatever its format: evaluation, `generate` and
// `perplexity` all read it here.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { LoadedCheckpoint } from '../checkpoint/index.ts';
import { BpeTokenizer } from '../data/tokenizer.ts';
import { CHAT_TEMPLATE } from '../data/chat-format.ts';
import { chatTemplateOf, foreignEvalTokenizer, nativeEvalTokenizer, type EvalTokenizer } from './eval-tokenizer.ts';

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

async function readOptionalJson(file: string): Promise<Record<string, unknown> | undefined> {
  const text = await readOptional(file);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${file}: expected a JSON object`);
  return value as Record<string, unknown>;
}

/** The tokenizer_config.json-like object a GGUF checkpoint carries (manifest.extra.tokenizerConfig), or undefined for other formats. */
function ggufTokenizerConfigOf(ck: { manifest?: { extra?: Record<string, unknown> } }, source: string): Record<string, unknown> | undefined {
  const extra = ck.manifest?.extra;
  if (extra?.format !== 'gguf') return undefined;
  const config = extra.tokenizerConfig;
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${source}: GGUF checkpoint without manifest.extra.tokenizerConfig (an object); load it with loadAnyCheckpoint`);
  return config as Record<string, unknown>;
}

/**
 * `ck`'s tokenizer and chat format for evaluation (src/eval/eval-tokenizer.ts). A tokenizer this
 * harness wrote (its checkpoints, or `export --format hf`), with no chat template or ours, is
 * read as our BpeTokenizer with our chat format: ids identical to training's, cache key
 * ck.tokenizerHash. Any other tokenizer.json (or ours under another chat template) goes through
 * @huggingface/tokenizers with the chat template of `dir`'s tokenizer_config.json (or
 * chat_template.jinja), else the plain template; generation_config.json's eos_token_id adds stop
 * ids. A GGUF checkpoint (ck.manifest.extra.format "gguf", `dir` the .gguf file) reads nothing
 * beside the file: its tokenizer config and chat template (tokenizer.chat_template) come from its
 * metadata, as loadGgufCheckpoint put them in manifest.extra.tokenizerConfig; plain text is
 * then encoded as llama.cpp does (BOS + text, when tokenizer.ggml.add_bos_token, its default).
 * Throws naming the file when one of these files is unreadable or the library cannot load
 * the tokenizer.
 */
export async function checkpointTokenizer(
  ck: Pick<LoadedCheckpoint, 'tokenizer' | 'tokenizerHash'> & { manifest?: { extra?: Record<string, unknown> } },
  dir: string,
): Promise<EvalTokenizer> {
  const gguf = ggufTokenizerConfigOf(ck, dir);
  if (gguf) return foreignEvalTokenizer({ tokenizer: ck.tokenizer, tokenizerHash: ck.tokenizerHash, tokenizerConfig: gguf, source: dir, templateFrom: 'the GGUF metadata (tokenizer.chat_template)' });
  const tokenizerConfig = await readOptionalJson(path.join(dir, 'tokenizer_config.json'));
  const generationConfig = await readOptionalJson(path.join(dir, 'generation_config.json'));
  const chatTemplateFile = await readOptional(path.join(dir, 'chat_template.jinja'));
  let ours: BpeTokenizer | undefined;
  try {
    ours = BpeTokenizer.fromJSON(ck.tokenizer, path.join(dir, 'tokenizer.json'));
  } catch {
    ours = undefined;
  }
  const template = chatTemplateOf(tokenizerConfig, chatTemplateFile, dir);
  if (ours && (template === undefined || template.text === CHAT_TEMPLATE)) return nativeEvalTokenizer(ours, ck.tokenizerHash);
  return foreignEvalTokenizer({ tokenizer: ck.tokenizer, tokenizerHash: ck.tokenizerHash, tokenizerConfig, generationConfig, chatTemplateFile, source: dir });
}
