// `lima-harness judge`: (re-)judge stored generations with the rubric or an LLM judge, outside a
// full experiment run: a JSONL of generations in, a JSONL of judgments out, one summary line.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../util/atomic.ts';
import { createJudge, judgeAll, judgeConcurrency, validateJudgeConfig, type JudgeConfig, type JudgeInput } from '../judge/index.ts';
import type { CommandOutput } from './regress-command.ts';

const USAGE = `Usage: lima-harness judge --judge rubric|llm --in GENERATIONS.jsonl --out JUDGMENTS.jsonl [options]

Judges each line {id, prompt, response, reference?, endedWithEot?} of --in (a run's
eval/generations.jsonl works too: without "id", the id is epoch:exampleId:sample) and writes
one line {id, score, valid, invalidReason?, reason, subscores?, raw} per input to --out (an LLM
reply counts only when it states one choice 1-6; otherwise invalidReason is truncated, refusal,
ambiguous, out-of-range or no-choice). Prints one summary line:
{"judged","valid","invalid","invalidByReason","requests","cacheHits","meanScore"} (meanScore over
valid judgments; invalidByReason maps each reason that occurred to its count).

Options:
  --judge rubric|llm   rubric: offline proxy, no service (default); llm: an OpenAI-compatible API
  --in FILE            input JSONL
  --out FILE           output JSONL (written atomically)
  --base-url URL       llm: API base, e.g. http://127.0.0.1:8080/v1 (POST {base}/chat/completions)
  --model NAME         llm: model name sent in the request
  --api-key-env VAR    llm: environment variable holding the API key (sent as a Bearer header)
  --concurrency N      llm: requests in flight (default 4)
  --timeout-ms N       llm: per-request timeout (default 60000)
  --max-retries N      llm: retries on network errors, timeouts, 429 and 5xx (default 5)
  --template FILE      llm: prompt template replacing src/judge/templates/helpfulness.txt
  --cache DIR          llm: judgment cache (default: judge-cache beside --out); reruns make no requests
  -h, --help           this help

Progress goes to stderr (silence it with LIMA_QUIET=1). Exit 0 on success, 1 when judging
fails (e.g. the API still fails after its retries), 2 for usage or invalid input.`;


class InputError extends Error {}

const LLM_ONLY = ['base-url', 'model', 'api-key-env', 'concurrency', 'timeout-ms', 'max-retries', 'template', 'cache'] as const;

export async function judgeCommand(argv: string[], out: CommandOutput = { log: console.log, error: console.error }): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        judge: { type: 'string' },
        in: { type: 'string' },
        out: { type: 'string' },
        'base-url': { type: 'string' },
        model: { type: 'string' },
        'api-key-env': { type: 'string' },
        concurrency: { type: 'string' },
        'timeout-ms': { type: 'string' },
        'max-retries': { type: 'string' },
        template: { type: 'string' },
        cache: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    out.error(`lima-harness judge: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    out.log(USAGE);
    return 0;
  }

  let config: JudgeConfig;
  let inputs: JudgeInput[];
  try {
    if (!values.in || !values.out) throw new InputError('--in and --out are required');
    const kind = values.judge ?? 'rubric';
    if (kind === 'rubric') {
      const given = LLM_ONLY.filter((name) => values[name] !== undefined);
      if (given.length > 0) throw new InputError(`--${given[0]} applies only to --judge llm`);
    }
    config = validateJudgeConfig(
      kind === 'llm'
        ? {
            kind,
            baseUrl: values['base-url'],
            model: values.model,
            apiKeyEnv: values['api-key-env'],
            concurrency: optionalInt(values.concurrency, '--concurrency'),
            timeoutMs: optionalInt(values['timeout-ms'], '--timeout-ms'),
            maxRetries: optionalInt(values['max-retries'], '--max-retries'),
            templatePath: values.template,
          }
        : { kind },
      'judge options',
    );
    inputs = await readJudgeInputs(values.in);
  } catch (err) {
    out.error(`lima-harness judge: error: ${(err as Error).message}${err instanceof InputError ? `\n\n${USAGE}` : ''}`);
    return 2;
  }

  try {
    const cacheDir = values.cache ?? path.join(path.dirname(path.resolve(values.out)), 'judge-cache');
    const judge = createJudge(config, { cacheDir });
    const judgments = await judgeAll(judge, inputs, { concurrency: judgeConcurrency(config) });
    const lines = judgments.map((j, i) =>
      JSON.stringify({ id: inputs[i]!.id, score: j.score, valid: j.valid, ...(j.invalidReason ? { invalidReason: j.invalidReason } : {}), reason: j.reason, ...(j.subscores ? { subscores: j.subscores } : {}), raw: j.raw }),
    );
    await writeFileAtomic(values.out, lines.length > 0 ? lines.join('\n') + '\n' : '');
    const valid = judgments.filter((j) => j.valid && j.score !== null);
    const stats = judge.stats();
    const reasonCounts = new Map<string, number>();
    for (const j of judgments) {
      if (j.valid) continue;
      const reason = j.invalidReason ?? 'unspecified';
      reasonCounts.set(reason, (reasonCounts.get(reason) ?? 0) + 1);
    }
    const invalidByReason = Object.fromEntries([...reasonCounts].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
    const meanScore = valid.length > 0 ? Math.round((valid.reduce((s, j) => s + j.score!, 0) / valid.length) * 10000) / 10000 : null;
    out.log(
      JSON.stringify({ judged: judgments.length, valid: valid.length, invalid: judgments.length - valid.length, invalidByReason, requests: stats.requests, cacheHits: stats.cacheHits, meanScore }),
    );
    return 0;
  } catch (err) {
    out.error(`lima-harness judge: error: ${(err as Error).message}`);
    return 1;
  }
}

function optionalInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new InputError(`${flag}: expected a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Reads and checks the input JSONL; every error names file:line and the field. */
export async function readJudgeInputs(file: string): Promise<JudgeInput[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const inputs: JudgeInput[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `${file}:${i + 1}`;
    let row: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
      row = parsed as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${where}: not a JSON object (${(err as Error).message})`);
    }
    let id = row.id;
    if (id === undefined && row.exampleId !== undefined && row.epoch !== undefined && row.sample !== undefined) id = `${row.epoch}:${row.exampleId}:${row.sample}`;
    if (typeof id !== 'string' || id === '') throw new Error(`${where}: field "id": expected a non-empty string, got ${JSON.stringify(id) ?? 'nothing'}`);
    if (seen.has(id)) throw new Error(`${where}: field "id": ${JSON.stringify(id)} repeats line ${seen.get(id)}`);
    seen.set(id, i + 1);
    if (typeof row.prompt !== 'string') throw new Error(`${where}: field "prompt": expected a string`);
    if (typeof row.response !== 'string') throw new Error(`${where}: field "response": expected a string`);
    if (row.reference !== undefined && row.reference !== null && typeof row.reference !== 'string') throw new Error(`${where}: field "reference": expected a string`);
    if (row.endedWithEot !== undefined && typeof row.endedWithEot !== 'boolean') throw new Error(`${where}: field "endedWithEot": expected true or false`);
    const input: JudgeInput = { id, prompt: row.prompt, response: row.response };
    if (typeof row.reference === 'string') input.reference = row.reference;
    if (typeof row.endedWithEot === 'boolean') input.endedWithEot = row.endedWithEot;
    inputs.push(input);
  }
  return inputs;
}
