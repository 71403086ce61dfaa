// Hugging Face GPT-2 folders: our tensors under transformers' names and layouts, export then read
// back (same weights hash, same perplexity as the native path within 1e-5 relative; a sharded
// copy; a BF16 copy), reading errors that name the file and the tensor or field, and
// the `export` and `perplexity` commands.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  checkpointFormat,
  hfGpt2Name,
  loadAnyCheckpoint,
  loadCheckpoint,
  loadHfCheckpoint,
  readSafetensors,
  weightsHash,
  writeSafetensors,
  writeSafetensorsSharded,
  SAFETENSORS_INDEX_FILE,
} from '../../src/checkpoint/index.ts';
import { weightShapes, type NamedWeights } from '../../src/model/weights.ts';
import { BpeTokenizer } from '../../src/data/tokenizer.ts';
import { textPerplexity } from '../../src/eval/text-perplexity.ts';
import { exportCommand } from '../../src/cli/export-command.ts';
import { perplexityCommand } from '../../src/cli/perplexity-command.ts';
import { tempDir, writeCheckpoints } from '../eval/helpers.ts';

const root = await tempDir('hf');
after(() => fs.rm(root, { recursive: true, force: true }));
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const { list, model, tok } = await writeCheckpoints(path.join(root, 'run'), 1, { context: 32, dModel: 32, layers: 2, heads: 4 });
const native = list[0]!.dir;
const hfDir = path.join(root, 'hf');
const exportLines: string[] = [];
assert.equal(await exportCommand(['--checkpoint', native, '--format', 'hf', '--out', hfDir], (t) => exportLines.push(t)), 0);

// Long enough for several context windows (32 tokens each).
const text = 'The sky is blue because light scatters in the air. Cats and dogs answer a question with care.\n'.repeat(6) + 'why is the sky blue? a short poem about cats.';
const textFile = path.join(root, 'text.txt');
await fs.writeFile(textFile, text);

const close = (a: number, b: number, rel = 1e-5) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

/** A copy of the exported folder with its weights replaced (for the error tests). */
async function variant(name: string, edit: (tensors: NamedWeights, config: Record<string, unknown>) => void | Promise<void>): Promise<string> {
  const dir = path.join(root, name);
  await fs.cp(hfDir, dir, { recursive: true });
  const tensors = (await readSafetensors(path.join(dir, 'model.safetensors'))).weights;
  const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await edit(tensors, config);
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

test('export writes an HF GPT-2 folder: config, tensor names and layouts as transformers, tokenizer files', async () => {
  assert.deepEqual((await fs.readdir(hfDir)).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  const config = JSON.parse(await fs.readFile(path.join(hfDir, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'gpt2');
  assert.deepEqual([config.vocab_size, config.n_positions, config.n_embd, config.n_layer, config.n_head], [model.vocab, 32, 32, 2, 4]);
  assert.equal(config.activation_function, 'gelu_new');
  assert.equal(config.layer_norm_epsilon, 1e-5);
  assert.equal(config.tie_word_embeddings, true);
  assert.equal(config.eos_token_id, tok.special.eot);
  const st = await readSafetensors(path.join(hfDir, 'model.safetensors'));
  const ck = await loadCheckpoint(native);
  const d = model.dModel;
  const expected: Array<[string, number[]]> = [['transformer.wte.weight', [model.vocab, d]], ['transformer.wpe.weight', [32, d]], ['transformer.ln_f.weight', [d]], ['transformer.ln_f.bias', [d]]];
  for (let i = 0; i < 2; i++) {
    const h = `transformer.h.${i}`;
    expected.push([`${h}.ln_1.weight`, [d]], [`${h}.ln_1.bias`, [d]], [`${h}.attn.c_attn.weight`, [d, 3 * d]], [`${h}.attn.c_attn.bias`, [3 * d]], [`${h}.attn.c_proj.weight`, [d, d]], [`${h}.attn.c_proj.bias`, [d]]);
    expected.push([`${h}.ln_2.weight`, [d]], [`${h}.ln_2.bias`, [d]], [`${h}.mlp.c_fc.weight`, [d, 4 * d]], [`${h}.mlp.c_fc.bias`, [4 * d]], [`${h}.mlp.c_proj.weight`, [4 * d, d]], [`${h}.mlp.c_proj.bias`, [d]]);
  }
  assert.deepEqual([...st.weights.keys()].sort(), expected.map(([n]) => n).sort(), 'exactly these tensors (no lm_head: tied)');
  for (const [name, shape] of expected) assert.deepEqual(st.weights.get(name)!.shape, shape, name);
  // Conv1D layout [in, out] = ours: the same values in the same order.
  assert.deepEqual(st.weights.get('transformer.h.1.mlp.c_fc.weight')!.data, ck.weights.get('h.1.mlp.w1')!.data);
  assert.deepEqual(st.weights.get('transformer.h.0.attn.c_attn.bias')!.data, ck.weights.get('h.0.attn.bqkv')!.data);
  for (const [ours] of weightShapes(model)) assert.ok(st.weights.has(hfGpt2Name(ours)), ours);
  assert.deepEqual(JSON.parse(await fs.readFile(path.join(hfDir, 'tokenizer.json'), 'utf8')), tok.toJSON());
  const tc = JSON.parse(await fs.readFile(path.join(hfDir, 'tokenizer_config.json'), 'utf8'));
  assert.equal(tc.eos_token, '<|eot|>');
  assert.equal(typeof tc.chat_template, 'string');
  assert.equal(JSON.parse(exportLines[0]!).weightsHash, ck.hash);
});

test('read back through the HF path: the same weights hash and the same perplexity as the native path (1e-5 relative)', async () => {
  const a = await loadCheckpoint(native);
  const b = await loadHfCheckpoint(hfDir);
  assert.equal(await checkpointFormat(native), 'native');
  assert.equal(await checkpointFormat(hfDir), 'hf');
  assert.equal(b.hash, a.hash, 'same content hash whichever format');
  assert.deepEqual(b.model, a.model);
  assert.equal(b.tokenizerHash, a.tokenizerHash);
  assert.equal(b.manifest.backend, 'hf-gpt2');
  const pa = await textPerplexity(a.model, a.weights, tok, text);
  const pb = await textPerplexity(b.model, b.weights, BpeTokenizer.fromJSON(b.tokenizer), text);
  assert.ok(pa.windows >= 3, `${pa.windows} windows`);
  assert.equal(pa.tokens, tok.encode(text).length - 1);
  assert.ok(pa.perplexity > 1 && Number.isFinite(pa.perplexity));
  assert.equal(pb.tokens, pa.tokens);
  assert.ok(close(pb.nll, pa.nll), `${pb.nll} vs ${pa.nll}`);
  assert.equal(pa.bytes, Buffer.byteLength(text) - tok.tokenByteLength(tok.encode(text)[0]!));

  // A sharded copy reads through the same path.
  const sharded = path.join(root, 'sharded');
  await fs.mkdir(sharded);
  for (const f of ['config.json', 'tokenizer.json']) await fs.copyFile(path.join(hfDir, f), path.join(sharded, f));
  const st = (await readSafetensors(path.join(hfDir, 'model.safetensors'))).weights;
  const files = await writeSafetensorsSharded(sharded, st, 40_000);
  assert.ok(files.includes(SAFETENSORS_INDEX_FILE) && files.length >= 3, files.join(', '));
  const c = await loadAnyCheckpoint(sharded);
  assert.equal(c.hash, a.hash);
  // A shard tensor that the index does not list is an error naming the shard.
  const index = JSON.parse(await fs.readFile(path.join(sharded, SAFETENSORS_INDEX_FILE), 'utf8'));
  const shard = index.weight_map['transformer.ln_f.bias'];
  delete index.weight_map['transformer.ln_f.bias'];
  await fs.writeFile(path.join(sharded, SAFETENSORS_INDEX_FILE), JSON.stringify(index));
  await assert.rejects(loadHfCheckpoint(sharded), (e: Error) => e.message === `${path.join(sharded, shard)}: tensor transformer.ln_f.bias is not in ${SAFETENSORS_INDEX_FILE}'s weight_map for this shard`);
});

test('a BF16 folder loads with the values rounded, as transformers would give them', async () => {
  const dir = path.join(root, 'f16');
  await fs.mkdir(dir);
  for (const f of ['config.json', 'tokenizer.json']) await fs.copyFile(path.join(hfDir, f), path.join(dir, f));
  const st = (await readSafetensors(path.join(hfDir, 'model.safetensors'))).weights;
  // BF16 by truncation of the float32 bits: every value is then exactly representable.
  const header: Record<string, unknown> = {};
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const expected: NamedWeights = new Map();
  for (const [name, t] of st) {
    const words = new Uint32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
    const halves = Uint16Array.from(words, (w) => w >>> 16);
    expected.set(name, { shape: t.shape, data: new Float32Array(Uint32Array.from(halves, (h) => h << 16).buffer) });
    chunks.push(new Uint8Array(halves.buffer));
    header[name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + halves.byteLength] };
    offset += halves.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header));
  const lengthBytes = new Uint8Array(8);
  new DataView(lengthBytes.buffer).setBigUint64(0, BigInt(json.length), true);
  await fs.writeFile(path.join(dir, 'model.safetensors'), Buffer.concat([lengthBytes, json, ...chunks]));
  const ck = await loadHfCheckpoint(dir);
  assert.deepEqual(ck.manifest.extra?.dtypes, ['BF16']);
  assert.deepEqual(ck.weights.get('h.0.mlp.w2')!.data, expected.get('transformer.h.0.mlp.c_proj.weight')!.data);
  const ours = new Map([...ck.weights]);
  assert.equal(ck.hash, weightsHash(model, ours));
  assert.notEqual(ck.hash, (await loadCheckpoint(native)).hash, 'rounded weights are other weights');
});

test('reading errors name the file and the tensor or field', async () => {
  const missing = await variant('missing', (t) => void t.delete('transformer.h.1.mlp.c_fc.bias'));
  await assert.rejects(loadHfCheckpoint(missing), (e: Error) => e.message === `${path.join(missing, 'model.safetensors')}: missing tensor transformer.h.1.mlp.c_fc.bias`);
  const shape = await variant('shape', (t) => {
    t.set('transformer.h.0.attn.c_proj.weight', { shape: [16, 64], data: t.get('transformer.h.0.attn.c_proj.weight')!.data });
  });
  await assert.rejects(loadHfCheckpoint(shape), (e: Error) => e.message === `${path.join(shape, 'model.safetensors')}: tensor transformer.h.0.attn.c_proj.weight: shape [16, 64], config.json needs [32, 32]`);
  const longer = await variant('longer', (_t, c) => void (c.n_positions = 64));
  await assert.rejects(loadHfCheckpoint(longer), /longer\/model\.safetensors: tensor transformer\.wpe\.weight: shape \[32, 32\], config\.json needs \[64, 32\]/);
  const extra = await variant('extra', (t) => void t.set('transformer.h.0.attn.q_norm.weight', { shape: [1], data: new Float32Array(1) }));
  await assert.rejects(loadHfCheckpoint(extra), /extra\/model\.safetensors: tensor transformer\.h\.0\.attn\.q_norm\.weight is not part of a GPT-2 model/);
  const untied = await variant('untied', (t) => {
    const wte = t.get('transformer.wte.weight')!;
    t.set('lm_head.weight', { shape: wte.shape, data: wte.data.map((v) => v * 2) });
  });
  await assert.rejects(loadHfCheckpoint(untied), /untied\/model\.safetensors: tensor lm_head\.weight differs from transformer\.wte\.weight: an untied output head is not supported/);
  // A tied lm_head copy, the mask buffers of older saves and names without "transformer." load.
  const older = await variant('older', (t) => {
    const renamed = new Map([...t].map(([n, v]) => [n.replace(/^transformer\./, ''), v]));
    t.clear();
    for (const [n, v] of renamed) t.set(n, v);
    t.set('h.0.attn.bias', { shape: [1, 1, 32, 32], data: new Float32Array(1024) });
    t.set('lm_head.weight', renamed.get('wte.weight')!);
  });
  assert.equal((await loadHfCheckpoint(older)).hash, (await loadCheckpoint(native)).hash);
  for (const [name, edit, message] of [
    ['qwen2', (c: Record<string, unknown>) => void (c.model_type = 'qwen2'), 'model_type: "qwen2" is not supported yet'],
    ['bert', (c: Record<string, unknown>) => void (c.model_type = 'bert'), 'model_type: unknown model type "bert"'],
    ['eps', (c: Record<string, unknown>) => void (c.layer_norm_epsilon = 1e-6), 'layer_norm_epsilon: 0.000001 is not supported'],
    ['act', (c: Record<string, unknown>) => void (c.activation_function = 'relu'), 'activation_function: "relu" is not supported'],
    ['heads', (c: Record<string, unknown>) => void (c.n_head = 'four'), 'n_head: expected a positive integer, got "four"'],
    ['tie', (c: Record<string, unknown>) => void (c.tie_word_embeddings = false), 'tie_word_embeddings: false is not supported'],
  ] as const) {
    const dir = await variant(`cfg-${name}`, (_t, c) => edit(c));
    await assert.rejects(loadHfCheckpoint(dir), (e: Error) => e.message.startsWith(`${path.join(dir, 'config.json')}: ${message}`), name);
  }
  const noTok = await variant('no-tokenizer', () => {});
  await fs.rm(path.join(noTok, 'tokenizer.json'));
  await assert.rejects(loadHfCheckpoint(noTok), /no-tokenizer\/tokenizer\.json: cannot read \(ENOENT\)/);
  await assert.rejects(loadAnyCheckpoint(path.join(root, 'run')), /neither a lima-harness checkpoint \(manifest\.json\) nor a Hugging Face folder/);
});

test('the perplexity command prints the same JSON line for the native checkpoint and its HF export', async () => {
  const lines: string[] = [];
  assert.equal(await perplexityCommand(['--model', native, '--text', textFile], (t) => lines.push(t)), 0);
  assert.equal(await perplexityCommand(['--model', hfDir, '--text', textFile], (t) => lines.push(t)), 0);
  const [a, b] = lines.map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(a).sort(), ['bitsPerByte', 'file', 'model', 'nll', 'perplexity', 'tokens']);
  assert.equal(a.model, native);
  assert.equal(b.model, hfDir);
  assert.equal(a.tokens, b.tokens);
  for (const k of ['nll', 'perplexity', 'bitsPerByte']) assert.ok(close(a[k], b[k]), `${k}: ${a[k]} vs ${b[k]}`);
  const direct = await textPerplexity(model, (await loadCheckpoint(native)).weights, tok, text);
  assert.ok(close(a.perplexity, direct.perplexity) && Math.abs(a.perplexity - Math.exp(a.nll / a.tokens)) < 1e-9 * a.perplexity);
  assert.ok(Math.abs(a.bitsPerByte - a.nll / Math.LN2 / direct.bytes) < 1e-12);
  // Through the real command line (main's registration, exit code, one line on stdout).
  const run = await promisify(execFile)(process.execPath, [path.join(repo, 'bin/lima-harness.mjs'), 'perplexity', '--model', hfDir, '--text', textFile], { cwd: repo });
  const lineOut = run.stdout.trim().split('\n');
  assert.equal(lineOut.length, 1);
  assert.ok(close(JSON.parse(lineOut[0]!).perplexity, a.perplexity));
  // Errors: a one-token text, and a missing --text file, exit 1 naming the file.
  const oneToken = path.join(root, 'one.txt');
  await fs.writeFile(oneToken, 'a');
  await assert.rejects(perplexityCommand(['--model', hfDir, '--text', oneToken], () => {}), /one\.txt: text of 1 token\(s\): nothing to score/);
  await assert.rejects(perplexityCommand(['--model', hfDir, '--text', path.join(root, 'nope.txt')], () => {}), /nope\.txt: cannot read \(ENOENT\)/);
  await assert.rejects(exportCommand(['--checkpoint', native, '--format', 'gguf', '--out', path.join(root, 'x')], () => {}), /--format: "gguf" is not supported/);
  // --out is replaced only when it is an earlier export; any other folder is refused and kept.
  const notes = path.join(root, 'notes');
  await fs.mkdir(notes);
  await fs.writeFile(path.join(notes, 'notes.md'), 'mine');
  await assert.rejects(exportCommand(['--checkpoint', native, '--format', 'hf', '--out', notes], () => {}), /--out .*notes exists and holds "notes\.md", which are not an earlier export/);
  assert.equal(await fs.readFile(path.join(notes, 'notes.md'), 'utf8'), 'mine');
  await assert.rejects(exportCommand(['--checkpoint', native, '--format', 'hf', '--out', path.dirname(native)], () => {}), /which are not an earlier export/);
  await fs.access(native);
  assert.equal(await exportCommand(['--checkpoint', native, '--format', 'hf', '--out', hfDir], () => {}), 0, 'an earlier export is replaced');
  // export reads our own checkpoints only: an HF folder is refused saying so (not "manifest.json missing"), and nothing is written.
  await assert.rejects(exportCommand(['--checkpoint', hfDir, '--format', 'hf', '--out', path.join(root, 'again')], () => {}), /a Hugging Face folder: export reads this harness's own checkpoints/);
  await assert.rejects(fs.access(path.join(root, 'again')));
});
