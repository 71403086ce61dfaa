// Hugging Face Llama / Mistral folders: writeHfLlama then loadHfCheckpoint gives back the same
// weights and hash (F32; BF16 up to its rounding), tied and untied heads, Mistral and
// transformers-5 configs; config and tensor errors name the file and the field or tensor; the
// loaded folder's perplexity through the evaluation path equals the reference forward's; and,
// when LIMA_HF_PYTHON names a Python with transformers and torch, transformers' own logits.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  f32ToBf16,
  hfLlamaName,
  loadAnyCheckpoint,
  loadHfCheckpoint,
  readSafetensors,
  weightsHash,
  writeCheckpoint,
  writeHfLlama,
  writeSafetensors,
} from '../../src/checkpoint/index.ts';
import { exportCommand } from '../../src/cli/export-command.ts';
import { canonicalModelConfig, type ModelConfig } from '../../src/model/config.ts';
import { weightShapes, type NamedWeights } from '../../src/model/weights.ts';
import { referenceForward } from '../../src/model/reference-forward.ts';
import { exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { negLogProb } from '../../src/eval/scoring.ts';
import { textPerplexity } from '../../src/eval/text-perplexity.ts';
import { makeTokenizer, tempDir } from '../eval/helpers.ts';
import { LLAMA_CONFIGS, randomLlamaWeights } from '../model/llama-fixtures.ts';

const root = await tempDir('hf-llama');
after(() => fs.rm(root, { recursive: true, force: true }));
const tokenizer = { version: '1.0', model: { type: 'BPE', vocab: { a: 0 }, merges: [] } };
const gqa = LLAMA_CONFIGS.gqa!; // untied, kvHeads 2 of 4 heads
const tied = LLAMA_CONFIGS.mha_tied!;
const wide = LLAMA_CONFIGS.wide_heads!; // headDim 8 != 20 / 4
const gqaWeights = randomLlamaWeights(gqa, 41);
const gqaDir = path.join(root, 'gqa');
await writeHfLlama(gqaDir, gqa, gqaWeights, { tokenizer, tokens: { bos: 1, eos: 2 } });

function sameWeights(a: NamedWeights, b: NamedWeights): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, t] of a) {
    assert.deepEqual(b.get(name)!.shape, t.shape, name);
    assert.ok(Buffer.from(b.get(name)!.data.buffer, b.get(name)!.data.byteOffset, b.get(name)!.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `${name} differs`);
  }
}

/** A copy of `from` with its tensors and config.json edited (for the error tests). */
async function variant(from: string, name: string, edit: (tensors: NamedWeights, config: Record<string, unknown>) => void): Promise<string> {
  const dir = path.join(root, name);
  await fs.cp(from, dir, { recursive: true });
  const tensors = (await readSafetensors(path.join(dir, 'model.safetensors'))).weights;
  const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(tensors, config);
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

test('writeHfLlama writes LlamaForCausalLM names, [out, in] projections and config fields', async () => {
  assert.deepEqual((await fs.readdir(gqaDir)).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  const config = JSON.parse(await fs.readFile(path.join(gqaDir, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'llama');
  assert.deepEqual(config.architectures, ['LlamaForCausalLM']);
  assert.deepEqual(
    [config.vocab_size, config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads, config.head_dim, config.max_position_embeddings],
    [89, 32, 56, 2, 4, 2, 8, 48],
  );
  assert.equal(config.tie_word_embeddings, false);
  assert.equal(config.hidden_act, 'silu');
  assert.equal(config.rope_scaling, null);
  assert.equal(config.bos_token_id, 1);
  const st = (await readSafetensors(path.join(gqaDir, 'model.safetensors'))).weights;
  assert.equal(st.size, weightShapes(gqa).length);
  assert.deepEqual(st.get('model.layers.1.self_attn.k_proj.weight')!.shape, [16, 32]);
  assert.deepEqual(st.get('model.layers.0.mlp.down_proj.weight')!.shape, [32, 56]);
  assert.deepEqual(st.get('lm_head.weight')!.shape, [89, 32]);
  // q_proj.weight[o][i] = wq[i][o].
  const wq = gqaWeights.get('h.0.attn.wq')!.data;
  const q = st.get('model.layers.0.self_attn.q_proj.weight')!.data;
  for (const [o, i] of [[0, 0], [5, 17], [31, 2]] as const) assert.equal(q[o * 32 + i], wq[i * 32 + o]);
  for (const [ours] of weightShapes(gqa)) assert.ok(st.has(hfLlamaName(ours)), ours);
});

test('an HF Llama folder reads back to the same weights and hash (untied GQA, tied, headDim != dModel/heads)', async () => {
  const a = await loadAnyCheckpoint(gqaDir);
  sameWeights(a.weights, gqaWeights);
  assert.equal(a.hash, weightsHash(gqa, gqaWeights));
  assert.deepEqual(canonicalModelConfig(a.model), canonicalModelConfig(gqa));
  assert.equal(a.manifest.backend, 'hf-llama');
  for (const [label, model] of [['tied', tied], ['wide', wide]] as const) {
    const weights = randomLlamaWeights(model, 43);
    const dir = path.join(root, label);
    await writeHfLlama(dir, model, weights, { tokenizer });
    const st = (await readSafetensors(path.join(dir, 'model.safetensors'))).weights;
    assert.equal(st.has('lm_head.weight'), !model.tiedEmbeddings, `${label}: lm_head stored only when untied`);
    const b = await loadHfCheckpoint(dir);
    sameWeights(b.weights, weights);
    assert.equal(b.hash, weightsHash(model, weights), label);
  }
  // A tied folder that also stores lm_head as a copy of the embedding loads the same.
  const tiedCopy = await variant(path.join(root, 'tied'), 'tied-copy', (t) => void t.set('lm_head.weight', t.get('model.embed_tokens.weight')!));
  assert.equal((await loadHfCheckpoint(tiedCopy)).hash, (await loadHfCheckpoint(path.join(root, 'tied'))).hash);
  // Mistral, names without "model.", the inv_freq buffers of older saves, transformers-5 rope_parameters: same model, same hash.
  const mistral = await variant(gqaDir, 'mistral', (t, c) => {
    const renamed = new Map([...t].map(([n, v]) => [n.replace(/^model\./, ''), v]));
    t.clear();
    for (const [n, v] of renamed) t.set(n, v);
    t.set('layers.0.self_attn.rotary_emb.inv_freq', { shape: [4], data: new Float32Array(4) });
    c.model_type = 'mistral';
    c.architectures = ['MistralForCausalLM'];
    c.sliding_window = null;
    delete c.rope_theta;
    c.rope_parameters = { rope_type: 'default', rope_theta: 10000 };
  });
  const m = await loadHfCheckpoint(mistral);
  assert.equal(m.manifest.backend, 'hf-mistral');
  assert.equal(m.hash, a.hash);
  // A float32 rms_norm_eps (as GGUF stores it) and a missing head_dim hash as the same model.
  const f32eps = await variant(gqaDir, 'f32-eps', (_t, c) => {
    c.rms_norm_eps = Math.fround(1e-5);
    delete c.head_dim;
  });
  assert.equal((await loadHfCheckpoint(f32eps)).hash, a.hash);
});

test('a BF16 HF Llama folder loads with the values rounded to nearest even, and bf16-exact weights round-trip bit for bit', async () => {
  const dir = path.join(root, 'bf16');
  await writeHfLlama(dir, gqa, gqaWeights, { tokenizer, dtype: 'BF16' });
  const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8'));
  assert.equal(config.torch_dtype, 'bfloat16');
  const stat = await fs.stat(path.join(dir, 'model.safetensors'));
  const f32stat = await fs.stat(path.join(gqaDir, 'model.safetensors'));
  assert.ok(stat.size < 0.55 * f32stat.size, `${stat.size} vs ${f32stat.size} bytes`);
  const ck = await loadHfCheckpoint(dir);
  assert.deepEqual(ck.manifest.extra?.dtypes, ['BF16']);
  let changed = 0;
  for (const [name, t] of gqaWeights) {
    const got = ck.weights.get(name)!.data;
    const bits = new Uint32Array(got.buffer, got.byteOffset, got.length);
    for (let i = 0; i < t.data.length; i++) {
      assert.equal(bits[i]! & 0xffff, 0, `${name}[${i}] is not a bfloat16 value`);
      const v = t.data[i]!;
      // Nearest bfloat16: within half a unit in the last place (8 significant bits).
      assert.ok(Math.abs(got[i]! - v) <= Math.abs(v) * 2 ** -8 + 1e-40, `${name}[${i}]: ${got[i]} vs ${v}`);
      if (got[i] !== v) changed++;
    }
  }
  assert.ok(changed > 0, 'rounding changed nothing: the weights were not random');
  // Ties go to even: 1 + 2^-8 (exactly halfway between 1 and 1 + 2^-7) rounds down to 1, 1 + 3 * 2^-8 up to 1 + 2^-6.
  const tie = new Uint32Array(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8]).buffer);
  assert.deepEqual([f32ToBf16(tie[0]!), f32ToBf16(tie[1]!)], [0x3f80, 0x3f82]);
  // Weights already in bfloat16 come back identical, with the hash of the float32 folder.
  const again = path.join(root, 'bf16-again');
  await writeHfLlama(again, gqa, ck.weights, { tokenizer, dtype: 'BF16' });
  const f32 = path.join(root, 'bf16-as-f32');
  await writeHfLlama(f32, gqa, ck.weights, { tokenizer });
  const [x, y] = [await loadHfCheckpoint(again), await loadHfCheckpoint(f32)];
  sameWeights(x.weights, ck.weights);
  assert.equal(x.hash, ck.hash);
  assert.equal(y.hash, ck.hash);
});

test('HF Llama config and tensor errors name config.json or the safetensors file and the field or tensor', async () => {
  const configFile = (dir: string) => path.join(dir, 'config.json');
  const cases: Array<[string, (c: Record<string, unknown>) => void, string]> = [
    ['rope-scaling', (c) => void (c.rope_scaling = { rope_type: 'llama3', factor: 8 }), 'rope_scaling: {"rope_type":"llama3","factor":8} is not supported'],
    ['rope-params', (c) => void (c.rope_parameters = { rope_type: 'yarn', rope_theta: 10000 }), 'rope_parameters.rope_type: "yarn" is not supported'],
    ['act', (c) => void (c.hidden_act = 'gelu'), 'hidden_act: "gelu" is not supported (the MLP is SwiGLU with silu)'],
    ['attn-bias', (c) => void (c.attention_bias = true), 'attention_bias: true is not supported'],
    ['mlp-bias', (c) => void (c.mlp_bias = true), 'mlp_bias: true is not supported'],
    ['kv-heads', (c) => void (c.num_key_value_heads = 3), 'num_key_value_heads: 3 does not divide num_attention_heads 4'],
    ['hidden', (c) => void delete c.hidden_size, 'hidden_size: expected a positive integer, got undefined'],
    ['eps', (c) => void (c.rms_norm_eps = 'small'), 'rms_norm_eps: expected a positive number, got "small"'],
    ['window', (c) => void ((c.model_type = 'mistral'), (c.sliding_window = 16)), 'sliding_window: 16 is not supported (attention is full causal'],
  ];
  for (const [name, edit, message] of cases) {
    const dir = await variant(gqaDir, `cfg-${name}`, (_t, c) => edit(c));
    await assert.rejects(loadHfCheckpoint(dir), (e: Error) => e.message.startsWith(`${configFile(dir)}: ${message}`), `${name}: expected "${message}"`);
  }
  // A Mistral window at least the context is plain causal attention: it loads.
  const wideWindow = await variant(gqaDir, 'cfg-wide-window', (_t, c) => void ((c.model_type = 'mistral'), (c.sliding_window = 4096)));
  assert.equal((await loadHfCheckpoint(wideWindow)).hash, weightsHash(gqa, gqaWeights));

  const st = (dir: string) => path.join(dir, 'model.safetensors');
  const missing = await variant(gqaDir, 'missing', (t) => void t.delete('model.layers.1.mlp.up_proj.weight'));
  await assert.rejects(loadHfCheckpoint(missing), (e: Error) => e.message === `${st(missing)}: missing tensor model.layers.1.mlp.up_proj.weight`);
  const noHead = await variant(gqaDir, 'no-head', (t) => void t.delete('lm_head.weight'));
  await assert.rejects(loadHfCheckpoint(noHead), (e: Error) => e.message.startsWith(`${st(noHead)}: missing tensor lm_head.weight (config.json has tie_word_embeddings false)`));
  const shape = await variant(gqaDir, 'shape', (t) => {
    const k = t.get('model.layers.0.self_attn.k_proj.weight')!;
    t.set('model.layers.0.self_attn.k_proj.weight', { shape: [32, 16], data: k.data }); // [in, out]: not transposed
  });
  await assert.rejects(loadHfCheckpoint(shape), (e: Error) => e.message === `${st(shape)}: tensor model.layers.0.self_attn.k_proj.weight: shape [32, 16], config.json needs [16, 32]`);
  const extra = await variant(gqaDir, 'extra', (t) => void t.set('model.layers.0.self_attn.q_norm.weight', { shape: [8], data: new Float32Array(8) }));
  await assert.rejects(loadHfCheckpoint(extra), (e: Error) => e.message === `${st(extra)}: tensor model.layers.0.self_attn.q_norm.weight is not part of a Llama model (unexpected tensor)`);
  const tiedDiffers = await variant(path.join(root, 'tied'), 'tied-differs', (t) => {
    const e = t.get('model.embed_tokens.weight')!;
    t.set('lm_head.weight', { shape: e.shape, data: e.data.map((v) => v * 2) });
  });
  await assert.rejects(loadHfCheckpoint(tiedDiffers), /tied-differs\/model\.safetensors: tensor lm_head\.weight differs from model\.embed_tokens\.weight but config\.json has tie_word_embeddings true/);
});

test('an HF Llama folder scores through the evaluation path as the reference forward does', async () => {
  const tok = makeTokenizer();
  const model: ModelConfig = { ...gqa, vocab: tok.vocabSize, context: 64 };
  const weights = randomLlamaWeights(model, 47, 0.25);
  const dir = path.join(root, 'scored');
  await writeHfLlama(dir, model, weights, { tokenizer: tok.toJSON() });
  const ck = await loadHfCheckpoint(dir);
  const text = 'why is the sky blue? light scatters in air. a short poem about cats and dogs.';
  const ids = tok.encode(text);
  assert.ok(ids.length > 8 && ids.length <= 64, `${ids.length} tokens`);
  const got = await textPerplexity(ck.model, ck.weights, tok, text);
  const ref = referenceForward(model, weights, { inputIds: [ids], attentionMask: [ids.map(() => 1)], positionIds: [ids.map((_, t) => t)] });
  let nll = 0;
  for (let t = 0; t + 1 < ids.length; t++) nll += negLogProb(ref.logits, t * model.vocab, model.vocab, ids[t + 1]!);
  assert.equal(got.tokens, ids.length - 1);
  assert.ok(Math.abs(got.nll - nll) <= 1e-5 * nll, `${got.nll} vs ${nll}`);
});

test('export of a native llama checkpoint writes a Llama folder that reads back to the same hash', async () => {
  const tok = makeTokenizer();
  const model: ModelConfig = { ...tied, vocab: tok.vocabSize };
  const weights = randomLlamaWeights(model, 53);
  const native = await writeCheckpoint(path.join(root, 'native-run'), { model, weights, tokenizer: tok.toJSON() }, { epoch: 1, step: 10, trainLoss: 1, dataHash: 'test', configHash: 'test', backend: 'test' });
  const out = path.join(root, 'exported');
  const lines: string[] = [];
  assert.equal(await exportCommand(['--checkpoint', native, '--format', 'hf', '--out', out], (t) => lines.push(t)), 0);
  const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'llama');
  const back = await loadHfCheckpoint(out);
  assert.equal(back.hash, weightsHash(model, weights));
  assert.equal(JSON.parse(lines[0]!).weightsHash, back.hash);
});

// transformers' LlamaForCausalLM on the same folder, when LIMA_HF_PYTHON names a Python with
// transformers and torch (e.g. a venv made with `python3 -m venv --system-site-packages` on
// Debian's python3-torch plus `pip install transformers safetensors`).
const referencePython = process.env.LIMA_HF_PYTHON;
test('transformers LlamaForCausalLM gives our logits on the written folders (GQA, tied, headDim != dModel/heads)', { skip: referencePython ? false : 'LIMA_HF_PYTHON is not set' }, async () => {
  const script = [
    'import json, sys, torch',
    'from transformers import AutoModelForCausalLM',
    'folder, ids = sys.argv[1], json.loads(sys.argv[2])',
    'model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager").eval()',
    'with torch.no_grad():',
    '    out = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0]',
    'print(json.dumps(out.tolist()))',
  ].join('\n');
  for (const [label, model] of [['gqa', gqa], ['tied', tied], ['wide', wide], ['mistral', gqa]] as const) {
    const dir = path.join(root, label);
    const ck = await loadHfCheckpoint(dir);
    const ids = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % model.vocab);
    const run = await promisify(execFile)(referencePython!, ['-c', script, dir, JSON.stringify(ids)], { maxBuffer: 64 << 20 });
    const theirs = (JSON.parse(run.stdout) as number[][]).flat();
    const session = await DecoderSession.create(exportOnnxBytes(ck.model, ck.weights), ck.model, { threads: 1 });
    const ours = (await session.run([ids], [ids.map(() => 1)], [ids.map((_, t) => t)])).logits;
    await session.release();
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < theirs.length; i++) {
      diff = Math.max(diff, Math.abs(ours[i]! - theirs[i]!));
      scale = Math.max(scale, Math.abs(theirs[i]!));
    }
    assert.ok(scale > 0.5 && diff / scale < 1e-4, `${label}: relative error ${diff / scale}`);
  }
});
