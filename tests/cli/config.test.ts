// Experiment configs: the shipped ones validate; unknown keys and wrong types are errors naming
// the key; the command line's data paths replace the config's.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { applyDataOverrides, loadExperimentConfig, validateExperimentConfig } from '../../src/cli/config.ts';
import { main } from '../../src/cli/main.ts';

const root = path.resolve(import.meta.dirname, '../..');
const cli = path.join(root, 'bin/lima-harness.mjs');

test('every config in experiments/ validates and takes LIMA defaults where it is silent', async () => {
  for (const name of ['default', 'ci', 'lima-se']) {
    const config = await loadExperimentConfig(path.join(root, 'experiments', `${name}.json`));
    assert.equal(config.name, name);
    assert.equal(config.train!.epochs, 15);
    assert.equal(config.train!.weightDecay, 0.1);
    assert.deepEqual(config.analysis.window, [5, 10]);
    assert.deepEqual([config.analysis.confidence, config.analysis.alpha, config.analysis.maxUndefinedShare], [0.95, 0.05, 0.05]);
    assert.equal(config.data.counts.heldout > 0, true);
  }
});

function base(): Record<string, unknown> {
  return {
    name: 'x', seed: 1,
    data: { builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: 10, heldout: 10, dev: 2 } },
    model: { context: 32, dModel: 16, layers: 1, heads: 2 },
    train: { maxLength: 32 },
  };
}

test('unknown keys and wrong types are errors that name the key', () => {
  const cases: Array<[(c: Record<string, any>) => void, RegExp]> = [
    [(c) => (c.modle = {}), /cfg\.json\.modle: unknown key/],
    [(c) => (c.train.learningRate = 1), /train\.learningRate: unknown key/],
    [(c) => (c.train.epochs = 'ten'), /train\.epochs: expected a positive integer/],
    [(c) => (c.model.heads = 3), /heads \(3\) must divide/],
    [(c) => (c.model.context = 0), /model\.context: must be >= 1/],
    [(c) => (c.seed = -1), /seed: must be >= 0/],
    [(c) => (c.train.maxLength = 64), /train\.maxLength \(64\) exceeds model\.context \(32\)/],
    [(c) => (c.train.base = { kind: 'pretrain', epochs: 1, batchSize: 4, lr: 1e-3, maxLength: 64 }), /train\.base\.maxLength \(64\) exceeds model\.context \(32\)/],
    [(c) => (c.train.base = { kind: 'pretrain', epochs: 1, batchSize: 4, lr: 1e-3, maxLength: 32, wordnetTexts: 100 }), /train\.base\.wordnetTexts: the builtin WordNet dataset already gives pretraining text/],
    [(c) => (c.analysis = { window: [10, 5] }), /analysis\.window \[10,5\] is empty/],
    [(c) => (c.analysis = { confidence: 95 }), /cfg\.json: analysis\.confidence: must be strictly between 0 and 1, got 95/],
    [(c) => (c.analysis = { confidence: 1 }), /cfg\.json: analysis\.confidence: must be strictly between 0 and 1, got 1/],
    [(c) => (c.analysis = { confidence: '0.95' }), /cfg\.json: analysis\.confidence: expected a number, got the string "0\.95"/],
    [(c) => (c.analysis = { alpha: 0 }), /cfg\.json: analysis\.alpha: must be strictly between 0 and 1, got 0/],
    [(c) => (c.analysis = { alpha: null }), /cfg\.json: analysis\.alpha: expected a number, got null/],
    [(c) => (c.analysis = { maxUndefinedShare: 1.5 }), /cfg\.json: analysis\.maxUndefinedShare: must be <= 1, got 1\.5/],
    [(c) => (c.analysis = { maxUndefinedShare: -0.1 }), /cfg\.json: analysis\.maxUndefinedShare: must be >= 0, got -0\.1/],
    [(c) => (c.analysis = { level: 0.9 }), /cfg\.json: analysis\.level: unknown key \(allowed: window, bootstrap, confidence, alpha, maxUndefinedShare\)/],
    [(c) => (c.judge = { kind: 'llm', baseUrl: 'http://x', model: 'm', apiKey: 'sk-secret' }), /apiKey/],
    [(c) => (c.name = 'a/b'), /name must use only letters/],
    [(c) => (c.eval = { maxLength: 64, stride: 64 }), /eval\.stride \("disjoint" or a number of tokens\): must be <= 63, got 64/],
    [(c) => (c.eval = { stride: 'half' }), /eval\.stride \("disjoint" or a number of tokens\): expected a number, got the string "half"/],
    // The window is the smaller of eval.maxLength and the model's context (32 here).
    [(c) => (c.eval = { maxLength: 256, stride: 40 }), /eval\.stride \(40\) must be at most 31: the scoring window is 32 tokens/],
  ];
  for (const [mutate, expected] of cases) {
    const config = base() as Record<string, any>;
    mutate(config);
    assert.throws(() => validateExperimentConfig(config, 'cfg.json'), expected, `expected ${expected}`);
  }
  // The analysis settings given are kept; the silent ones take their defaults.
  const set = base() as Record<string, any>;
  set.analysis = { confidence: 0.9, alpha: 0.1, maxUndefinedShare: 0 };
  assert.deepEqual(validateExperimentConfig(set, 'cfg.json').analysis, { window: [5, 10], bootstrap: 1000, confidence: 0.9, alpha: 0.1, maxUndefinedShare: 0 });
  // The key itself never appears in the error.
  const withKey = base() as Record<string, any>;
  withKey.judge = { kind: 'llm', baseUrl: 'http://x', model: 'm', apiKey: 'sk-secret' };
  assert.throws(() => validateExperimentConfig(withKey, 'cfg.json'), (err: Error) => !err.message.includes('sk-secret'));
});

test('the CLI: --help everywhere, one-line errors naming the file, command-line data paths win', async () => {
  for (const args of [['--help'], ['experiment', '--help'], ['train', '--help'], ['data', 'stats', '--help'], ['judge', '--help'], ['regress', '--help']]) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /Usage|usage/);
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-cli-'));
  const bad = path.join(dir, 'bad.json');
  await fs.writeFile(bad, JSON.stringify({ ...base(), trian: {} }));
  let r = spawnSync(process.execPath, [cli, 'experiment', '--config', bad], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /bad\.json\.trian: unknown key/);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  // --train replaces the builtin training set: a missing file is then the error (one missing file,
  // so the error cannot name another one read at the same time).
  r = spawnSync(process.execPath, [cli, 'train', '--config', path.join(root, 'experiments/ci.json'), '--run-dir', dir + '/run', '--train', dir + '/none.jsonl', '--quiet'], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /none\.jsonl/);
  // One flag alone replaces that one set, builtin config included: its file is then what is read.
  r = spawnSync(process.execPath, [cli, 'train', '--config', path.join(root, 'experiments/ci.json'), '--run-dir', dir + '/run2', '--heldout', 'x.jsonl', '--quiet'], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /x\.jsonl: cannot read the data source/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('--heldout FILE alone replaces the builtin held-out set; "--heldout a b" says to repeat the flag; a config with a BOM loads', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-cli-'));
  const config = path.join(dir, 'cfg.json');
  const small = { ...base(), data: { builtin: 'wordnet', train: [], heldout: [], dev: [], counts: { train: 12, heldout: 4, dev: 3 }, pretrainTexts: 5 } };
  await fs.writeFile(config, '\uFEFF' + JSON.stringify(small, null, 2)); // a byte order mark, as Windows editors write
  assert.equal((await loadExperimentConfig(config)).name, 'x');
  const held = path.join(dir, 'held.jsonl');
  await fs.writeFile(held, Array.from({ length: 5 }, (_, i) => JSON.stringify({ question: `Mine ${i}?`, answer: `A ${i}` })).join('\n') + '\n');

  // applyDataOverrides: only the held-out set changes; the builtin stays for the rest.
  const loaded = await loadExperimentConfig(config);
  applyDataOverrides(loaded, { heldout: [held] });
  assert.equal(loaded.data.builtin, 'wordnet');
  assert.deepEqual(loaded.data.heldout, [{ path: held }]);
  assert.deepEqual([loaded.data.train, loaded.data.dev], [[], []]);

  // In-process (a spawned CLI costs seconds here); the output is captured.
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const log = mock.method(console, 'log', (text: string) => void out.push(text));
    const error = mock.method(console, 'error', (text: string) => void err.push(text));
    try {
      return { status: await main(args), stdout: out.join('\n'), stderr: err.join('\n') };
    } finally {
      log.mock.restore();
      error.mock.restore();
    }
  };
  let r = await run(['data', 'prepare', '--config', config, '--out', path.join(dir, 'out'), '--heldout', held]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /train 12, held-out 4, dev 3, pretraining texts 5/);
  const read = async (name: string) => (await fs.readFile(path.join(dir, 'out', name), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { source: string });
  assert.ok((await read('heldout.jsonl')).every((rec) => rec.source === 'held.jsonl'));
  assert.ok([...(await read('train.jsonl')), ...(await read('dev.jsonl'))].every((rec) => rec.source === 'wordnet'));

  for (const command of [['data', 'prepare'], ['experiment'], ['train']]) {
    r = await run([...command, '--config', config, '--heldout', 'a.jsonl', 'b.jsonl']);
    assert.equal(r.status, 2, `${command.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /--heldout takes one file; to give several, repeat the flag: --heldout a\.jsonl --heldout b\.jsonl/);
  }
  r = await run(['data', 'prepare', '--config', config, '--dev=a.jsonl', 'b.jsonl']);
  assert.match(r.stderr, /--dev takes one file; to give several, repeat the flag: --dev a\.jsonl --dev b\.jsonl/);
  r = await run(['experiment', '--config', config, 'other.json']);
  assert.match(r.stderr, /--config takes one value, got a second: "other\.json"/);
  r = await run(['experiment', '--config', config, '--quiet', 'stray']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unexpected argument "stray"/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('checkpoints: takes the place of model and train; errors name the key; paths resolve', async () => {
  const series = (): Record<string, unknown> => {
    const c = base();
    delete c.model;
    delete c.train;
    return { ...c, checkpoints: { glob: 'runs/x/checkpoint-*', format: 'hf' }, analysis: { window: [0.5, 2.5], bootstrap: 20 } };
  };
  const ok = validateExperimentConfig(series(), 'cfg.json');
  assert.deepEqual(ok.checkpoints, { glob: 'runs/x/checkpoint-*', format: 'hf' });
  assert.equal(ok.model, undefined);
  assert.equal(ok.train, undefined);
  assert.deepEqual(ok.analysis.window, [0.5, 2.5], 'fractional window with a series');
  assert.equal(validateExperimentConfig({ ...series(), checkpoints: { dir: 'runs/x' } }, 'cfg.json').checkpoints!.format, 'auto');
  assert.deepEqual(validateExperimentConfig({ ...series(), checkpoints: { glob: 'runs/x/*.gguf', format: 'gguf' } }, 'cfg.json').checkpoints, { glob: 'runs/x/*.gguf', format: 'gguf' });
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...series(), model: base().model }, /cfg\.json: model: not allowed with checkpoints/],
    [{ ...series(), train: {} }, /cfg\.json: train: not allowed with checkpoints/],
    [{ ...series(), tokenizer: { vocabSize: 512 } }, /cfg\.json: tokenizer: not allowed with checkpoints/],
    [{ ...series(), checkpoints: { dir: 'a', glob: 'b/*' } }, /cfg\.json: checkpoints: give exactly one of dir .* and glob/],
    [{ ...series(), checkpoints: {} }, /cfg\.json: checkpoints: give exactly one of dir/],
    [{ ...series(), checkpoints: { dir: 'a', format: 'safetensors' } }, /cfg\.json: checkpoints\.format: expected one of hf, native, gguf, auto, got "safetensors"/],
    [{ ...series(), checkpoints: { dir: 'a', kind: 'hf' } }, /cfg\.json: checkpoints\.kind: unknown key/],
    [{ ...series(), checkpoints: { glob: 'runs/*/checkpoint-*' } }, /cfg\.json: checkpoints\.glob: wildcards \(\* \?\) only in the last path component/],
    [{ ...base(), analysis: { window: [0.5, 2] } }, /cfg\.json: analysis\.window\[0\]: expected an integer/],
  ];
  for (const [raw, pattern] of cases) assert.throws(() => validateExperimentConfig(raw, 'cfg.json'), pattern);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-ckcfg-'));
  try {
    const file = path.join(dir, 'c.json');
    await fs.writeFile(file, JSON.stringify(series()));
    const loaded = await loadExperimentConfig(file);
    assert.equal(loaded.checkpoints!.glob, path.resolve('runs/x/checkpoint-*'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
