// lima-harness command line. Each command has --help; errors print one clear line (the
// file, line and field where the input is at fault) and exit non-zero, without a stack trace
// unless LIMA_DEBUG=1.
import { parseArgs } from 'node:util';
import { applyDataOverrides, loadExperimentConfig, strayArgumentError } from './config.ts';
import { runExperiment, type Stage } from './experiment.ts';
import { watchExperiment } from './watch.ts';
import { dataCommand } from './data-command.ts';
import { judgeCommand } from './judge-command.ts';
import { regressCommand } from './regress-command.ts';
import { workerCommand } from './worker-command.ts';
import { exportCommand, ExportUsageError } from './export-command.ts';
import { perplexityCommand, PerplexityUsageError } from './perplexity-command.ts';
import { generateCommand, GenerateUsageError } from './generate-command.ts';
import { validateQueueUrl } from '../eval/config.ts';

const USAGE = `lima-harness: which epoch checkpoint should I ship, and does held-out perplexity tell me?

Usage: lima-harness <command> [options]

Commands:
  experiment --config FILE   run a whole study: data, training, evaluation, judging, report
  train --config FILE        prepare data and train (one checkpoint per epoch) only
  evaluate --config FILE     everything up to and including the evaluation pool
  data stats FILE            count records, pairs and skipped rows of a data file
  data prepare --config FILE build a study's train / held-out / dev sets
  judge --judge rubric|llm   (re-)judge stored generations
  worker --queue URL         serve a study's evaluation tasks from a Redis queue (BullMQ)
  regress METRICS BASELINE   compare metrics.json with a committed baseline
  export --checkpoint DIR --format hf --out DIR
                             a checkpoint as a Hugging Face GPT-2 folder
  perplexity --model PATH --text FILE
                             perplexity of a text file (our checkpoint or an HF GPT-2 folder)
  generate --model PATH --prompt TEXT
                             a prompt's continuation (greedy, or sampled with --temperature)

Run 'lima-harness <command> --help' for a command's options.`;

const EXPERIMENT_USAGE = (command: string) => `Usage: lima-harness ${command} --config experiments/NAME.json [options]

Options:
  --config FILE      the experiment config (JSON; see experiments/default.json)
  --out DIR          report directory (default reports/<name>)
  --run-dir DIR      checkpoints and intermediate results (default checkpoints/<name>)
  --train FILE       training data, replacing the config's training set (repeatable)
  --heldout FILE     held-out data for perplexity, replacing the config's held-out set (repeatable:
                     --heldout a.jsonl --heldout b.jsonl)
  --dev FILE         dev data for generation quality, replacing the config's dev set (repeatable)
                     Each flag replaces only its set; with the builtin dataset the other sets and
                     the pretraining text still come from it.
  --queue URL        evaluate on a BullMQ queue at redis://[:PASSWORD@]HOST:PORT (or rediss://)
                     served by 'lima-harness worker' processes, instead of the local pool
                     (same results; the password may come from LIMA_QUEUE_PASSWORD instead)
  --queue-name NAME  the queue (default lima-eval; workers must use the same)
  --resume           accepted for clarity: every run resumes what a killed run finished
  --watch            with a "checkpoints" section: evaluate checkpoints as the trainer writes
                     them (each once its files are complete and unchanged over two polls),
                     refreshing the report after each; stops after the trainer's last checkpoint
                     (trainer_state.json's max_steps) or on Ctrl-C (exit 130; a rerun resumes)
  --watch-interval S seconds between polls (default 10)
  --watch-until STEP stop once a checkpoint at this step or later is evaluated
  --quiet            no progress output
  -h, --help         this help

Runs resume: kill one at any moment and run the same command again; it finishes what is left.`;

async function experimentCommand(command: 'experiment' | 'train' | 'evaluate', argv: string[]): Promise<number> {
  const { values, tokens } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      out: { type: 'string' },
      'run-dir': { type: 'string' },
      train: { type: 'string', multiple: true },
      heldout: { type: 'string', multiple: true },
      dev: { type: 'string', multiple: true },
      queue: { type: 'string' },
      'queue-name': { type: 'string' },
      resume: { type: 'boolean' },
      watch: { type: 'boolean' },
      'watch-interval': { type: 'string' },
      'watch-until': { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
    tokens: true,
  });
  if (values.help) {
    console.log(EXPERIMENT_USAGE(command));
    return 0;
  }
  const stray = strayArgumentError(tokens);
  if (stray) throw new UsageError(`${stray}\n\n${EXPERIMENT_USAGE(command)}`);
  if (!values.config) throw new UsageError(`${command}: --config is required\n\n${EXPERIMENT_USAGE(command)}`);
  const config = await loadExperimentConfig(values.config);
  applyDataOverrides(config, values);
  if (values.queue !== undefined) config.eval.queue = validateQueueUrl(values.queue, '--queue');
  const until: Stage = command === 'train' ? 'train' : command === 'evaluate' ? 'eval' : 'report';
  const started = Date.now();
  const experiment = { config, outDir: values.out, runDir: values['run-dir'], until, quiet: values.quiet, queueName: values['queue-name'] };
  if (!values.watch && (values['watch-interval'] !== undefined || values['watch-until'] !== undefined)) {
    throw new UsageError(`${command}: --watch-interval and --watch-until go with --watch\n\n${EXPERIMENT_USAGE(command)}`);
  }
  if (values.watch) {
    if (command !== 'experiment') throw new UsageError(`${command}: --watch goes with 'experiment' (it refreshes the report)`);
    if (!config.checkpoints) throw new UsageError(`${values.config}: --watch needs a "checkpoints" section (a checkpoint series written by a trainer)`);
    const interval = values['watch-interval'] === undefined ? 10 : Number(values['watch-interval']);
    if (!(Number.isFinite(interval) && interval > 0)) throw new UsageError(`--watch-interval: expected a positive number of seconds, got ${JSON.stringify(values['watch-interval'])}`);
    const untilStep = values['watch-until'] === undefined ? undefined : Number(values['watch-until']);
    if (untilStep !== undefined && !(Number.isInteger(untilStep) && untilStep >= 0)) throw new UsageError(`--watch-until: expected a step (a non-negative integer), got ${JSON.stringify(values['watch-until'])}`);
    // Ctrl-C: stop after the tasks running (their results stored); a second Ctrl-C quits at once.
    const controller = new AbortController();
    const onSigint = () => {
      if (controller.signal.aborted) process.exit(130);
      process.stderr.write('\n[lima-harness] Ctrl-C: stopping after the work in progress is stored (Ctrl-C again quits at once; a rerun resumes either way)\n');
      controller.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const watched = await watchExperiment(experiment, { intervalSeconds: interval, untilStep, signal: controller.signal });
      if (watched.result?.reportHtml) {
        console.log(`report: ${watched.result.reportHtml}`);
        console.log(`metrics: ${watched.result.metricsFile}`);
      }
      console.error(`[lima-harness] watch ${watched.stopped === 'interrupted' ? 'interrupted' : 'finished'} after ${((Date.now() - started) / 1000).toFixed(0)}s: ${watched.evaluated.length} checkpoint(s) evaluated`);
      return watched.stopped === 'interrupted' ? 130 : 0;
    } finally {
      process.off('SIGINT', onSigint);
    }
  }
  const result = await runExperiment(experiment);
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  if (result.reportHtml) {
    console.log(`report: ${result.reportHtml}`);
    console.log(`metrics: ${result.metricsFile}`);
  } else {
    console.log(`${command} finished: ${result.runDir}`);
  }
  console.error(`[lima-harness] done in ${seconds}s`);
  return 0;
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'experiment':
      case 'train':
      case 'evaluate':
        return await experimentCommand(command, rest);
      case 'data':
        return await dataCommand(rest);
      case 'judge':
        return await judgeCommand(rest);
      case 'regress':
        return await regressCommand(rest);
      case 'worker':
        return await workerCommand(rest);
      case 'export':
        return await exportCommand(rest);
      case 'perplexity':
        return await perplexityCommand(rest);
      case 'generate':
        return await generateCommand(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        console.error(`lima-harness: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (process.env.LIMA_DEBUG === '1') console.error(err);
    const message = err instanceof Error ? err.message : String(err);
    console.error(`lima-harness ${command}: error: ${message}`);
    return err instanceof UsageError || err instanceof ExportUsageError || err instanceof PerplexityUsageError || err instanceof GenerateUsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  }
}
