// GGUF checkpoints (src/checkpoint/gguf.ts): the reader against fixtures written by an
// independent writer (tests/helpers/gguf-writer.ts), the RoPE row permutation against a hand
// example and llama.cpp's reshape/swapaxes definition, and the real stories260K GGUF against the
// same weights in llama2.c's .bin (an independent file format and layout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  checkpointFormat,
  decodeGgufTensor,
  loadAnyCheckpoint,
  parseGgufHeader,
  permuteRope,
  unpermuteRope,
  weightsHash,
} from '../../src/checkpoint/index.ts';
import { sharedSkip, STORIES_BIN, STORIES_GGUF } from '../helpers/shared-models.ts';
import { encodeGguf, f16Bits, f16Bytes, f32Bytes, T, type MetaEntry, type TensorEntry } from '../helpers/gguf-writer.ts';


/** Seeded uniform values, multiples of 2^-10 in [-1, 1) (exact in float16 and float32). */
function seeded(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      out[i] = ((s >>> 22) - 512) / 512;
    }
    return out;
  };
}

/**
 * llama.cpp's LlamaModel.permute written as numpy does it: w.reshape(nHead, 2, rows/nHead/2, cols)
 * .swapaxes(1, 2).reshape(rows, cols), for a row-major [rows][cols] matrix.
 */
function llamaCppPermute(w: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  const half = rows / nHead / 2;
  const out = new Float32Array(w.length);
  let k = 0;
  // Iterate the swapped view (nHead, half, 2, cols) in C order and read from (nHead, 2, half, cols).
  for (let h = 0; h < nHead; h++) for (let j = 0; j < half; j++) for (let s = 0; s < 2; s++) for (let c = 0; c < cols; c++) out[k++] = w[((h * 2 + s) * half + j) * cols + c]!;
  return out;
}

function transposeRM(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c]!;
  return out;
}

test('RoPE row permutation: hand example, llama.cpp definition, round trip', () => {
  // One head of size 4, one column: HF rows [a0 a1 | b0 b1] are stored interleaved [a0 b0 a1 b1].
  assert.deepEqual([...permuteRope(Float32Array.from([0, 1, 2, 3]), 4, 1, 1)], [0, 2, 1, 3]);
  assert.deepEqual([...unpermuteRope(Float32Array.from([0, 2, 1, 3]), 4, 1, 1)], [0, 1, 2, 3]);
  // Two heads of size 4, two columns.
  const w = Float32Array.from({ length: 16 }, (_, i) => i);
  assert.deepEqual([...permuteRope(w, 8, 2, 2)], [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
  const rnd = seeded(7);
  for (const [rows, cols, heads] of [[64, 64, 8], [32, 64, 4], [48, 5, 3], [8, 3, 1]] as const) {
    const m = rnd(rows * cols);
    assert.deepEqual(permuteRope(m, rows, cols, heads), llamaCppPermute(m, rows, cols, heads), `${rows}x${cols}/${heads}`);
    assert.deepEqual(unpermuteRope(permuteRope(m, rows, cols, heads), rows, cols, heads), m);
    assert.deepEqual(permuteRope(unpermuteRope(m, rows, cols, heads), rows, cols, heads), m);
  }
  assert.throws(() => permuteRope(new Float32Array(12), 6, 2, 2), /not a multiple of 2 \* 2 heads/);
});

// A tiny SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, a few pieces.
const PIECES: Array<[string, number]> = [['▁', -1], ['a', -2], ['b', -3], ['ab', -4], ['▁a', -5], ['▁ab', -6], ['c', -7]];
function tokenizerMeta(): MetaEntry[] {
  const tokens = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`), ...PIECES.map((p) => p[0])];
  const scores = [0, 0, 0, ...new Array(256).fill(0), ...PIECES.map((p) => p[1])];
  const types = [2, 3, 3, ...new Array(256).fill(6), ...PIECES.map(() => 1)];
  return [
    ['tokenizer.ggml.model', T.STR, 'llama'],
    ['tokenizer.ggml.tokens', T.ARR, { type: T.STR, values: tokens }],
    ['tokenizer.ggml.scores', T.ARR, { type: T.F32, values: scores }],
    ['tokenizer.ggml.token_type', T.ARR, { type: T.I32, values: types }],
    ['tokenizer.ggml.bos_token_id', T.U32, 1],
    ['tokenizer.ggml.eos_token_id', T.U32, 2],
    ['tokenizer.ggml.unknown_token_id', T.U32, 0],
    ['tokenizer.ggml.padding_token_id', T.U32, 0xffffffff],
    ['tokenizer.chat_template', T.STR, '{% for m in messages %}{{ m.content }}{% endfor %}'],
  ];
}
const FIXTURE_VOCAB = 3 + 256 + PIECES.length;

interface Fixture {
  file: Uint8Array;
  /** Expected weights in the contract's names and [in, out] layout, built from HF-layout matrices. */
  expected: Map<string, { shape: number[]; data: Float32Array }>;
}

/**
 * A small random llama in HF layout (q/k rows in rotate_half order), written as GGUF the way
 * convert_hf_to_gguf.py does (q/k rows permuted, matrices as nn.Linear [out][in]).
 */
function llamaFixture(opts: { f16?: boolean; tied?: boolean; version?: 2 | 3; alignment?: number; extraMeta?: MetaEntry[]; arch?: string; drop?: string; ropeDims?: number }): Fixture {
  const d = 16, heads = 4, kvHeads = 2, hd = 4, ffn = 24, layers = 2, vocab = FIXTURE_VOCAB;
  const rnd = seeded(1234);
  const tensors: TensorEntry[] = [];
  const expected = new Map<string, { shape: number[]; data: Float32Array }>();
  const put = (name: string, ne: number[], data: Float32Array) => {
    if (name === opts.drop) return;
    tensors.push({ name, ne, type: opts.f16 ? 1 : 0, bytes: opts.f16 ? f16Bytes(data) : f32Bytes(data) });
  };
  const linear = (gg: string, ours: string, out: number, inn: number, permuteHeads?: number) => {
    const hf = rnd(out * inn); // HF nn.Linear weight [out][in]
    put(gg, [inn, out], permuteHeads ? llamaCppPermute(hf, out, inn, permuteHeads) : hf);
    expected.set(ours, { shape: [inn, out], data: transposeRM(hf, out, inn) });
  };
  const vector = (gg: string, ours: string, n: number) => {
    const v = rnd(n);
    put(gg, [n], v);
    expected.set(ours, { shape: [n], data: v });
  };
  const emb = rnd(vocab * d);
  put('token_embd.weight', [d, vocab], emb);
  expected.set('tok_embeddings', { shape: [vocab, d], data: emb });
  for (let i = 0; i < layers; i++) {
    vector(`blk.${i}.attn_norm.weight`, `h.${i}.attn_norm`, d);
    linear(`blk.${i}.attn_q.weight`, `h.${i}.attn.wq`, heads * hd, d, heads);
    linear(`blk.${i}.attn_k.weight`, `h.${i}.attn.wk`, kvHeads * hd, d, kvHeads);
    linear(`blk.${i}.attn_v.weight`, `h.${i}.attn.wv`, kvHeads * hd, d);
    linear(`blk.${i}.attn_output.weight`, `h.${i}.attn.wo`, d, heads * hd);
    vector(`blk.${i}.ffn_norm.weight`, `h.${i}.ffn_norm`, d);
    linear(`blk.${i}.ffn_gate.weight`, `h.${i}.mlp.gate`, ffn, d);
    linear(`blk.${i}.ffn_up.weight`, `h.${i}.mlp.up`, ffn, d);
    linear(`blk.${i}.ffn_down.weight`, `h.${i}.mlp.down`, d, ffn);
  }
  vector('output_norm.weight', 'norm', d);
  if (!opts.tied) {
    const out = rnd(vocab * d);
    put('output.weight', [d, vocab], out);
    expected.set('output', { shape: [vocab, d], data: out });
  }
  const metadata: MetaEntry[] = [
    ['general.architecture', T.STR, opts.arch ?? 'llama'],
    ['general.name', T.STR, 'fixture'],
    ['llama.context_length', T.U32, 128],
    ['llama.embedding_length', T.U32, d],
    ['llama.block_count', T.U32, layers],
    ['llama.feed_forward_length', T.U32, ffn],
    ['llama.attention.head_count', T.U32, heads],
    ['llama.attention.head_count_kv', T.U32, kvHeads],
    ['llama.rope.dimension_count', T.U32, opts.ropeDims ?? hd],
    ['llama.rope.freq_base', T.F32, 500000],
    ['llama.attention.layer_norm_rms_epsilon', T.F32, 1e-6],
    // Every other value type, to exercise the parser.
    ['test.u8', T.U8, 200], ['test.i8', T.I8, -5], ['test.u16', T.U16, 60000], ['test.i16', T.I16, -30000],
    ['test.i32', T.I32, -7], ['test.u64', T.U64, 2n ** 60n], ['test.i64', T.I64, -42], ['test.f64', T.F64, 0.1], ['test.bool', T.BOOL, true],
    ['test.arr', T.ARR, { type: T.U16, values: [1, 2, 3] }],
    ...tokenizerMeta(),
    ...(opts.extraMeta ?? []),
  ];
  return { file: encodeGguf({ version: opts.version, metadata, tensors, alignment: opts.alignment }), expected };
}

async function withTemp<R>(fn: (dir: string) => Promise<R>): Promise<R> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-gguf-'));
  try {
    return await fn(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

for (const variant of [
  { label: 'f32 v3', f16: false, version: 3 as const },
  { label: 'f16 v2, tied, general.alignment 64', f16: true, version: 2 as const, tied: true, alignment: 64 },
]) {
  test(`GGUF reader on a small random llama (${variant.label}): exact tensors, config, tokenizer`, async () => {
    const fx = llamaFixture(variant);
    await withTemp(async (dir) => {
      const file = path.join(dir, 'model.gguf');
      await fs.writeFile(file, fx.file);
      assert.equal(await checkpointFormat(file), 'gguf');
      const header = parseGgufHeader(fx.file, file);
      assert.equal(header.version, variant.version);
      assert.equal(header.alignment, variant.alignment ?? 32);
      assert.equal(header.metadata.get('test.u8'), 200);
      assert.equal(header.metadata.get('test.i8'), -5);
      assert.equal(header.metadata.get('test.u16'), 60000);
      assert.equal(header.metadata.get('test.i16'), -30000);
      assert.equal(header.metadata.get('test.i32'), -7);
      assert.equal(header.metadata.get('test.u64'), 2n ** 60n);
      assert.equal(header.metadata.get('test.i64'), -42);
      assert.equal(header.metadata.get('test.f64'), 0.1);
      assert.equal(header.metadata.get('test.bool'), true);
      assert.deepEqual(header.metadata.get('test.arr'), [1, 2, 3]);
      const ck = await loadAnyCheckpoint(file);
      assert.deepEqual(ck.model, {
        arch: 'llama', vocab: FIXTURE_VOCAB, context: 128, dModel: 16, layers: 2, heads: 4, kvHeads: 2, headDim: 4,
        ffnHidden: 24, ropeTheta: 500000, normEps: 1e-6, tiedEmbeddings: variant.tied === true,
      });
      assert.deepEqual([...ck.weights.keys()].sort(), [...fx.expected.keys()].sort());
      for (const [name, e] of fx.expected) {
        const got = ck.weights.get(name)!;
        assert.deepEqual(got.shape, e.shape, name);
        assert.deepEqual(got.data, e.data, name);
      }
      assert.equal(ck.hash, weightsHash(ck.model, ck.weights));
      assert.equal(ck.manifest.backend, 'gguf');
      assert.deepEqual(ck.manifest.extra?.tensorTypes, [variant.f16 ? 'F16' : 'F32']);
      const config = ck.manifest.extra?.tokenizerConfig as Record<string, unknown>;
      assert.equal(config.chat_template, '{% for m in messages %}{{ m.content }}{% endfor %}');
      assert.equal(config.bos_token, '<s>');
      assert.equal(config.pad_token, undefined, 'padding id 0xFFFFFFFF means none');
      // The tokenizer loads in @huggingface/tokenizers: "ab" -> ▁ab; "c" after the prefix space
      // -> ▁ c; "é" is not in the vocabulary -> its UTF-8 bytes (byte fallback).
      const tok = new Tokenizer(ck.tokenizer as object, config);
      const id = (t: string) => 3 + 256 + PIECES.findIndex((p) => p[0] === t);
      assert.deepEqual(tok.encode('ab c', { add_special_tokens: false }).ids, [id('▁ab'), id('▁'), id('c')]);
      assert.deepEqual(tok.encode('ab', { add_special_tokens: true }).ids, [1, id('▁ab')]);
      assert.deepEqual(tok.encode('é', { add_special_tokens: false }).ids, [id('▁'), 3 + 0xc3, 3 + 0xa9]);
      assert.equal(tok.decode(tok.encode('ab cé').ids, { skip_special_tokens: true }), 'ab cé');
    });
  });
}

test('GGUF reader refuses what it cannot read, naming the file and the key or tensor', async () => {
  await withTemp(async (dir) => {
    const cases: Array<[string, Parameters<typeof llamaFixture>[0], RegExp]> = [
      ['arch.gguf', { arch: 'gpt2' }, /arch\.gguf: metadata general\.architecture is "gpt2"; only "llama"/],
      ['rope.gguf', { extraMeta: [['llama.rope.scaling.type', T.STR, 'linear']] }, /rope\.gguf: metadata llama\.rope\.scaling\.type is "linear"; RoPE scaling is not supported/],
      ['dup.gguf', { extraMeta: [['llama.block_count', T.U32, 2]] }, /dup\.gguf: metadata key llama\.block_count appears twice/],
      ['dims.gguf', { ropeDims: 2 }, /dims\.gguf: metadata llama\.rope\.dimension_count is 2, the head size is 4/],
      ['missing.gguf', { drop: 'blk.1.ffn_up.weight' }, /missing\.gguf: tensor blk\.1\.ffn_up\.weight is missing/],
      ['moe.gguf', { extraMeta: [['llama.expert_count', T.U32, 8]] }, /moe\.gguf: metadata llama\.expert_count is 8; mixture-of-experts/],
    ];
    for (const [name, opts, pattern] of cases) {
      const file = path.join(dir, name);
      await fs.writeFile(file, llamaFixture(opts).file);
      await assert.rejects(loadAnyCheckpoint(file), pattern, name);
    }
    const good = llamaFixture({}).file;
    const bad = path.join(dir, 'magic.gguf');
    await fs.writeFile(bad, Uint8Array.from([...new TextEncoder().encode('GGML'), ...good.subarray(4)]));
    await assert.rejects(loadAnyCheckpoint(bad), /magic\.gguf: not a GGUF file/);
    const truncated = path.join(dir, 'truncated.gguf');
    await fs.writeFile(truncated, good.subarray(0, good.length - 100));
    await assert.rejects(loadAnyCheckpoint(truncated), /truncated\.gguf: tensor output\.weight: data .* runs past the end of the file/);
    const v1 = path.join(dir, 'v1.gguf');
    const old = Uint8Array.from(good);
    old[4] = 1;
    await fs.writeFile(v1, old);
    await assert.rejects(loadAnyCheckpoint(v1), /v1\.gguf: GGUF version 1 is not supported/);
    await assert.rejects(checkpointFormat(path.join(dir, 'absent.gguf')), /no such checkpoint folder or file/);
  });
});

test('Q8_0 and BF16 tensors dequantise as ggml does', () => {
  // Two Q8_0 blocks: scale 0.5 then -0.25 (float16), quants -128..127 spread.
  const q = new Uint8Array(68);
  const view = new DataView(q.buffer);
  view.setUint16(0, f16Bits(0.5), true);
  view.setUint16(34, f16Bits(-0.25), true);
  const quants = Array.from({ length: 64 }, (_, i) => ((i * 37) % 256) - 128);
  quants.forEach((v, i) => view.setInt8((i < 32 ? 2 : 36) + (i % 32), v));
  const bf = new Uint16Array([0x3f80, 0xc000, 0x3e20]); // 1, -2, 0.15625
  const file = encodeGguf({
    metadata: [],
    tensors: [
      { name: 'q', ne: [32, 2], type: 8, bytes: q },
      { name: 'b', ne: [3], type: 30, bytes: new Uint8Array(bf.buffer) },
      { name: 'x', ne: [2], type: 12, bytes: new Uint8Array(288) },
    ],
  });
  const header = parseGgufHeader(file, 'q.gguf');
  const qt = decodeGgufTensor(file, header, header.tensors[0]!, 'q.gguf');
  assert.deepEqual(qt.shape, [2, 32]);
  assert.deepEqual([...qt.data], quants.map((v, i) => v * (i < 32 ? 0.5 : -0.25)));
  assert.deepEqual([...decodeGgufTensor(file, header, header.tensors[1]!, 'q.gguf').data], [1, -2, 0.15625]);
  assert.throws(() => decodeGgufTensor(file, header, header.tensors[2]!, 'q.gguf'), /q\.gguf: tensor x: tensor type Q4_K is not supported/);
});

test('stories260K.gguf: config from its metadata, tensors equal llama2.c stories260K.bin', { skip: sharedSkip }, async () => {
  const ck = await loadAnyCheckpoint(STORIES_GGUF);
  // The GGUF says context_length 2048; the .bin header (the training seq_len) says 512.
  assert.deepEqual(ck.model, {
    arch: 'llama', vocab: 512, context: 2048, dModel: 64, layers: 5, heads: 8, kvHeads: 4, headDim: 8,
    ffnHidden: 172, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: false,
  });
  const bin = await fs.readFile(STORIES_BIN);
  const header = new Int32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + 28));
  const [dim, hidden, layers, heads, kvHeads, vocab, seqLen] = [...header];
  assert.deepEqual([dim, hidden, layers, heads, kvHeads, vocab, seqLen], [64, 172, 5, 8, 4, 512, 512]);
  const floats = new Float32Array(bin.buffer.slice(bin.byteOffset + 28, bin.byteOffset + bin.length));
  let at = 0;
  const next = (n: number) => floats.subarray(at, (at += n));
  const hd = dim! / heads!;
  const kvDim = kvHeads! * hd;
  // llama2.c legacy order: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
  // freq_cis_real/imag [seq_len, hd/2] each; matrices per layer as nn.Linear [out][in].
  const emb = next(vocab! * dim!);
  const rmsAtt = next(layers! * dim!), wq = next(layers! * dim! * dim!), wk = next(layers! * kvDim * dim!), wv = next(layers! * kvDim * dim!);
  const wo = next(layers! * dim! * dim!), rmsFfn = next(layers! * dim!);
  const w1 = next(layers! * hidden! * dim!), w2 = next(layers! * dim! * hidden!), w3 = next(layers! * hidden! * dim!);
  const rmsFinal = next(dim!);
  next(2 * seqLen! * (hd / 2));
  assert.equal(at, floats.length, 'the whole .bin is accounted for');
  const eq = (name: string, expected: Float32Array) => assert.deepEqual(ck.weights.get(name)!.data, Float32Array.from(expected), name);
  // llama2.c's wq/wk rows are Meta's interleaved RoPE order: HF row (h, s, j) is row (h, j, s) there.
  const toHf = (w: Float32Array, nHead: number, cols: number) => {
    const rows = w.length / cols, half = rows / nHead / 2, out = new Float32Array(w.length);
    for (let h = 0; h < nHead; h++) for (let s = 0; s < 2; s++) for (let j = 0; j < half; j++) {
      out.set(w.subarray((h * 2 * half + 2 * j + s) * cols, (h * 2 * half + 2 * j + s + 1) * cols), (h * 2 * half + s * half + j) * cols);
    }
    return out;
  };
  eq('tok_embeddings', emb);
  eq('output', emb); // llama2.c shares the classifier; the GGUF stores a copy
  eq('norm', rmsFinal);
  for (let l = 0; l < layers!; l++) {
    const sl = (w: Float32Array, n: number) => w.subarray(l * n, (l + 1) * n);
    eq(`h.${l}.attn_norm`, sl(rmsAtt, dim!));
    eq(`h.${l}.ffn_norm`, sl(rmsFfn, dim!));
    eq(`h.${l}.attn.wq`, transposeRM(toHf(sl(wq, dim! * dim!), heads!, dim!), dim!, dim!));
    eq(`h.${l}.attn.wk`, transposeRM(toHf(sl(wk, kvDim * dim!), kvHeads!, dim!), kvDim, dim!));
    eq(`h.${l}.attn.wv`, transposeRM(sl(wv, kvDim * dim!), kvDim, dim!));
    eq(`h.${l}.attn.wo`, transposeRM(sl(wo, dim! * dim!), dim!, dim!));
    eq(`h.${l}.mlp.gate`, transposeRM(sl(w1, hidden! * dim!), hidden!, dim!));
    eq(`h.${l}.mlp.down`, transposeRM(sl(w2, dim! * hidden!), dim!, hidden!));
    eq(`h.${l}.mlp.up`, transposeRM(sl(w3, hidden! * dim!), hidden!, dim!));
  }
});
