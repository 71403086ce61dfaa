// `lima-harness perplexity --model PATH --text FILE`: one JSON line with the perplexity of a
// text file under a checkpoint, ours, a Hugging Face folder with any tokenizer.json or a GGUF file
// (src/eval/text-perplexity.ts, src/eval/eval-tokenizer.ts).
import { promises as fs } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadAnyCheckpoint } from '../checkpoint/index.ts';
import { checkpointTokenizer } from '../eval/checkpoint-tokenizer.ts';
import { textPerplexity } from '../eval/text-perplexity.ts';
import { stripBom } from '../util/text.ts';

const USAGE = `Usage: lima-harness perplexity --model PATH --text FILE [--threads N]

Prints one JSON line {tokens, nll, perplexity, bitsPerByte, model, file} for the UTF-8 text of
FILE under the model at PATH: a checkpoint of this harness (checkpoints/<run>/epoch-NN), a
Hugging Face GPT-2, Llama or Mistral folder (config.json, model.safetensors or a sharded set,
tokenizer.json) or a llama GGUF file (tokenizer from its metadata).
Every token after the first is scored once (nll in nats, summed; perplexity = exp(nll / tokens);
bitsPerByte = nll / ln 2 / UTF-8 bytes of the scored tokens), in disjoint windows of the model's
context, each reading the previous window's last token (lm-evaluation-harness's rolling
loglikelihood). The tokenizer is the checkpoint's own: this harness's byte-level BPE (no BOS
added), or any other tokenizer.json read with @huggingface/tokenizers (its BOS added when its
post-processor adds one, so that every token of the text is scored).
  --model PATH    checkpoint folder or .gguf file
  --text FILE     text file (a leading byte-order mark is dropped)
  --threads N     onnxruntime threads (default 1)
  -h, --help      this help`;

export class PerplexityUsageError extends Error {}

export async function perplexityCommand(argv: string[], log: (text: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { model: { type: 'string' }, text: { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    log(USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new PerplexityUsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n\n${USAGE}`);
  if (!values.model) throw new PerplexityUsageError(`--model is required\n\n${USAGE}`);
  if (!values.text) throw new PerplexityUsageError(`--text is required\n\n${USAGE}`);
  const threads = values.threads === undefined ? 1 : Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new PerplexityUsageError(`--threads: expected a positive integer, got ${JSON.stringify(values.threads)}`);
  let text: string;
  try {
    text = stripBom(await fs.readFile(values.text, 'utf8'));
  } catch (err) {
    throw new Error(`${values.text}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const ck = await loadAnyCheckpoint(values.model);
  const tok = await checkpointTokenizer(ck, values.model);
  let result;
  try {
    result = await textPerplexity(ck.model, ck.weights, tok, text, { threads });
  } catch (err) {
    throw new Error(`${values.text}: ${(err as Error).message}`);
  }
  log(JSON.stringify({ tokens: result.tokens, nll: result.nll, perplexity: result.perplexity, bitsPerByte: result.bitsPerByte, model: values.model, file: values.text }));
  return 0;
}
