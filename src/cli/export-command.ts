// `lima-harness export --checkpoint DIR --format hf --out DIR`: one of our checkpoints as a
// Hugging Face GPT-2 folder that transformers and other tools load: config.json,
// model.safetensors (F32, HF names and layouts), tokenizer.json (ours already is one),
// tokenizer_config.json (with our chat format as a Jinja chat_template) and
// generation_config.json. The folder is built aside and renamed into place.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { checkpointFormat, loadCheckpoint, writeHfGpt2, writeHfLlama } from '../checkpoint/index.ts';
import { BpeTokenizer, SPECIAL_TOKENS } from '../data/tokenizer.ts';
import { CHAT_TEMPLATE } from '../data/chat-format.ts';

const USAGE = `Usage: lima-harness export --checkpoint DIR --format hf --out DIR

Writes a checkpoint of this harness (checkpoints/<run>/epoch-NN) as a Hugging Face GPT-2 folder:
config.json (model_type gpt2; a llama checkpoint: a LlamaForCausalLM folder), model.safetensors (float32; tensor names and layouts as
transformers' GPT2LMHeadModel, the output head tied to transformer.wte), tokenizer.json,
tokenizer_config.json (chat_template: <|role|>content<|eot|> per turn, then <|assistant|> with
add_generation_prompt) and generation_config.json (stops at <|eot|>). --out must not exist, be
empty, or hold an earlier export (only the files above); that is replaced once the new one is
complete. Any other folder is refused, never deleted.
  --checkpoint DIR   the checkpoint folder (verified against its manifest)
  --format hf        the output format (only hf today)
  --out DIR          the folder to write
  -h, --help         this help`;

export class ExportUsageError extends Error {}

/** tokenizer_config.json for our tokenizer (PreTrainedTokenizerFast reading tokenizer.json). */
export function hfTokenizerConfig(tok: BpeTokenizer, context: number): Record<string, unknown> {
  const addedTokensDecoder: Record<string, unknown> = {};
  SPECIAL_TOKENS.forEach((content, id) => {
    addedTokensDecoder[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  });
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    model_max_length: context,
    add_bos_token: false,
    add_eos_token: false,
    bos_token: null,
    eos_token: tok.tokenString(tok.special.eot),
    pad_token: tok.tokenString(tok.special.pad),
    unk_token: null,
    additional_special_tokens: ['<|system|>', '<|user|>', '<|assistant|>'],
    added_tokens_decoder: addedTokensDecoder,
    clean_up_tokenization_spaces: false,
    chat_template: CHAT_TEMPLATE,
  };
}

export async function exportCommand(argv: string[], log: (text: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { checkpoint: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    log(USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new ExportUsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n\n${USAGE}`);
  if (!values.checkpoint) throw new ExportUsageError(`--checkpoint is required\n\n${USAGE}`);
  if (!values.out) throw new ExportUsageError(`--out is required\n\n${USAGE}`);
  const format = values.format ?? 'hf';
  if (format !== 'hf') throw new ExportUsageError(`--format: ${JSON.stringify(format)} is not supported (only "hf")\n\n${USAGE}`);
  if (path.resolve(values.out) === path.resolve(values.checkpoint)) throw new ExportUsageError('--out must differ from --checkpoint (the export replaces --out)');
  const kind = await checkpointFormat(values.checkpoint);
  if (kind !== 'native') {
    throw new ExportUsageError(`--checkpoint ${values.checkpoint}: ${kind === 'gguf' ? 'a GGUF file' : 'a Hugging Face folder'}: export reads this harness's own checkpoints (checkpoints/<run>/epoch-NN folders) only; evaluate this one directly (perplexity, generate, or a "checkpoints" series)`);
  }
  await refuseToReplace(values.out);
  const ck = await loadCheckpoint(values.checkpoint);
  let tok: BpeTokenizer;
  try {
    tok = BpeTokenizer.fromJSON(ck.tokenizer, path.join(values.checkpoint, 'tokenizer.json'));
  } catch (err) {
    throw new Error(`checkpoint ${values.checkpoint}: ${(err as Error).message}`);
  }
  const tokens = { bos: tok.special.eot, eos: tok.special.eot, pad: tok.special.pad };
  // A llama checkpoint (arch 'llama') goes out as a LlamaForCausalLM folder, ours as GPT-2.
  const write = ck.model.arch === 'llama' ? writeHfLlama : writeHfGpt2;
  const files = await write(values.out, ck.model, ck.weights, {
    tokenizer: ck.tokenizer,
    tokenizerConfig: hfTokenizerConfig(tok, ck.model.context),
    generationConfig: { bos_token_id: tokens.bos, eos_token_id: tokens.eos, pad_token_id: tokens.pad, _from_model_config: false },
    tokens,
  });
  log(JSON.stringify({ out: values.out, format, files, weightsHash: ck.hash }));
  return 0;
}

/** The files an export writes: --out may be replaced only when it holds nothing else. */
const EXPORT_FILES = new Set(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']);

/** Throws unless `out` is absent, empty, or an earlier export: the export replaces the whole folder. */
async function refuseToReplace(out: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(out);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new ExportUsageError(`--out ${out} is a file; give a folder that does not exist yet`);
    throw err;
  }
  const other = names.filter((n) => !EXPORT_FILES.has(n));
  if (other.length > 0) {
    throw new ExportUsageError(`--out ${out} exists and holds ${other.slice(0, 3).map((n) => JSON.stringify(n)).join(', ')}${other.length > 3 ? ` and ${other.length - 3} more` : ''}, which are not an earlier export; the export replaces the whole folder, so give a new or empty folder`);
  }
}
