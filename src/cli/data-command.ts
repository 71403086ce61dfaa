// `lima-harness data stats FILE` and `lima-harness data prepare --config FILE`.
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DATA_FORMATS, DataError, isSingleTurn, readRecords, type DataFormat } from '../data/readers.ts';
import { prepareData } from '../data/prepare.ts';
import { applyDataOverrides, loadExperimentConfig, strayArgumentError } from './config.ts';

const USAGE = `Usage: lima-harness data stats FILE [--format F] [--skip-invalid]
       lima-harness data prepare --config FILE [--out DIR] [--train FILE]... [--heldout FILE]... [--dev FILE]...

Run 'lima-harness data <stats|prepare> --help' for details.`;

const STATS_USAGE = `Usage: lima-harness data stats FILE [--format lima|alpaca|se-xml|chat] [--skip-invalid]

Reads a data file and prints one JSON object: format, records, pairs (one user + one assistant
turn), skipped, skippedByReason, notes (rows kept by a fallback, e.g. "empty-accepted-answer":
questions whose accepted answer has no text and that took their best other answer), and mean
prompt/response characters.
  --format F       override the detected format
  --skip-invalid   skip and count invalid rows (records, lines, posts) instead of stopping at
                   the first
  -h, --help       this help`;

const PREPARE_USAGE = `Usage: lima-harness data prepare --config experiments/NAME.json [options]

Builds the study's train / held-out / dev sets (JSONL) and a manifest into --out.
  --config FILE    the experiment config (its "data" section is used)
  --out DIR        output directory (default checkpoints/<name>/data)
  --train FILE     training data, replacing the config's training set (repeatable)
  --heldout FILE   held-out data, replacing the config's held-out set (repeatable:
                   --heldout a.jsonl --heldout b.jsonl)
  --dev FILE       dev data, replacing the config's dev set (repeatable)
                   Each flag replaces only its set; with the builtin dataset the other sets
                   and the pretraining text still come from it.
  -h, --help       this help`;

export async function dataCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'stats') return statsCommand(rest);
  if (sub === 'prepare') return prepareCommand(rest);
  if (sub === undefined || sub === '-h' || sub === '--help') {
    console.log(USAGE);
    return sub === undefined ? 2 : 0;
  }
  console.error(`lima-harness data: unknown subcommand ${JSON.stringify(sub)}\n\n${USAGE}`);
  return 2;
}

function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>, usage: string, allowPositionals: boolean) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true, tokens: true });
  } catch (err) {
    // parseArgs names the offending option ("Unknown option '--x'").
    console.error(`lima-harness data: ${(err as Error).message}\n\n${usage}`);
    return undefined;
  }
}

async function statsCommand(argv: string[]): Promise<number> {
  const parsed = parse(argv, { format: { type: 'string' }, 'skip-invalid': { type: 'boolean' } }, STATS_USAGE, true);
  if (!parsed) return 2;
  const values = parsed.values as { format?: string; 'skip-invalid'?: boolean; help?: boolean };
  if (values.help) {
    console.log(STATS_USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    console.error(`lima-harness data stats: expected one FILE, got ${parsed.positionals.length}\n\n${STATS_USAGE}`);
    return 2;
  }
  if (values.format !== undefined && !DATA_FORMATS.includes(values.format as DataFormat)) {
    console.error(`lima-harness data stats: --format: expected one of ${DATA_FORMATS.join(', ')}, got ${JSON.stringify(values.format)}`);
    return 2;
  }
  const file = parsed.positionals[0]!;
  const started = Date.now();
  const result = await readRecords(file, { format: values.format as DataFormat | undefined, skipInvalid: values['skip-invalid'] });
  const single = result.records.filter(isSingleTurn);
  const mean = (xs: number[]) => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);
  const stats = {
    file,
    format: result.format,
    records: result.records.length,
    pairs: result.pairs,
    multiTurn: result.records.length - result.pairs,
    skipped: result.skipped,
    skippedByReason: result.skippedByReason,
    notes: result.notes,
    meanPromptChars: mean(single.map((r) => r.turns.find((t) => t.role === 'user')!.content.length)),
    meanResponseChars: mean(single.map((r) => r.turns[r.turns.length - 1]!.content.length)),
    seconds: Number(((Date.now() - started) / 1000).toFixed(2)),
  };
  console.log(JSON.stringify(stats));
  return 0;
}

async function prepareCommand(argv: string[]): Promise<number> {
  const parsed = parse(
    argv,
    { config: { type: 'string' }, out: { type: 'string' }, train: { type: 'string', multiple: true }, heldout: { type: 'string', multiple: true }, dev: { type: 'string', multiple: true } },
    PREPARE_USAGE,
    true,
  );
  if (!parsed) return 2;
  const values = parsed.values as { config?: string; out?: string; train?: string[]; heldout?: string[]; dev?: string[]; help?: boolean };
  if (values.help) {
    console.log(PREPARE_USAGE);
    return 0;
  }
  const stray = strayArgumentError(parsed.tokens);
  if (stray) {
    console.error(`lima-harness data prepare: ${stray}\n\n${PREPARE_USAGE}`);
    return 2;
  }
  if (!values.config) {
    console.error(`lima-harness data prepare: --config is required\n\n${PREPARE_USAGE}`);
    return 2;
  }
  const config = await loadExperimentConfig(values.config);
  applyDataOverrides(config, values);
  const outDir = values.out ?? path.join('checkpoints', config.name, 'data');
  try {
    const prepared = await prepareData(config.data, config.seed, outDir);
    const c = prepared.counts;
    console.log(`data: train ${c.train}, held-out ${c.heldout}, dev ${c.dev}${c.pretrain !== undefined ? `, pretraining texts ${c.pretrain}` : ''} -> ${prepared.dir}`);
    return 0;
  } catch (err) {
    if (err instanceof DataError) {
      console.error(`lima-harness data prepare: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
