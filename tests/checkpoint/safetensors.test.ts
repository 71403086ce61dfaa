// safetensors: F32 round trip (values bit for bit, header padded to 8 bytes), F16 and BF16
// decoding of known bit patterns, sharded sets through model.safetensors.index.json, and errors
// that name the file and the tensor (truncated file, unknown dtype, shape/bytes mismatch, missing
// tensor, gaps between tensors).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  decodeSafetensors,
  encodeSafetensors,
  f16ToF32,
  readSafetensors,
  readSafetensorsDir,
  writeSafetensors,
  writeSafetensorsSharded,
  SAFETENSORS_INDEX_FILE,
} from '../../src/checkpoint/index.ts';
import type { NamedWeights } from '../../src/model/weights.ts';

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-safetensors-'));
after(() => fs.rm(root, { recursive: true, force: true }));

/** A safetensors file from raw entries (any dtype), as another writer would lay it out. */
function rawFile(entries: Array<{ name: string; dtype: string; shape: number[]; bytes: Uint8Array }>, pad = true): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  let json = JSON.stringify(header);
  while (pad && json.length % 8 !== 0) json += ' ';
  const h = Buffer.from(json);
  const out = new Uint8Array(8 + h.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let at = 8 + h.length;
  for (const e of entries) {
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  return out;
}
const u16 = (values: number[]) => new Uint8Array(Uint16Array.from(values).buffer);

function sample(): NamedWeights {
  return new Map([
    ['b.bias', { shape: [3], data: Float32Array.from([0.1, -0, 3.4028234663852886e38]) }],
    ['a.weight', { shape: [2, 3], data: Float32Array.from([1, -2.5, 1e-40, Math.PI, -Infinity, 7]) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ['scalar', { shape: [], data: Float32Array.from([42]) }],
  ]);
}

test('F32 round trip: names, shapes, order and every value bit for bit; header padded to 8 bytes', async () => {
  const file = path.join(root, 'rt.safetensors');
  await writeSafetensors(file, sample(), { format: 'pt', note: 'x' });
  const bytes = await fs.readFile(file);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  assert.equal(headerLength % 8, 0);
  assert.equal(JSON.parse(bytes.subarray(8, 8 + headerLength).toString()).__metadata__.note, 'x');
  const back = await readSafetensors(file);
  assert.deepEqual(back.metadata, { format: 'pt', note: 'x' });
  assert.deepEqual([...back.weights.keys()], ['b.bias', 'a.weight', 'empty', 'scalar']);
  for (const [name, t] of sample()) {
    const r = back.weights.get(name)!;
    assert.deepEqual(r.shape, t.shape, name);
    assert.deepEqual(new Uint32Array(r.data.buffer), new Uint32Array(t.data.buffer), `${name} bit for bit (incl. -0 and subnormals)`);
    assert.equal(back.dtypes.get(name), 'F32');
  }
  // No temp file left beside it.
  assert.deepEqual(await fs.readdir(root), ['rt.safetensors']);
});

test('F16 and BF16 decode known bit patterns exactly (normals, subnormals, extremes, infinities, NaN, -0)', () => {
  const f16: Array<[number, number]> = [
    [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x7bff, 65504], [0x0400, 2 ** -14],
    [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x7c00, Infinity], [0xfc00, -Infinity], [0x8000, -0],
  ];
  const bf16: Array<[number, number]> = [
    [0x3f80, 1], [0xc049, -3.140625], [0x4049, 3.140625], [0x7f7f, 3.3895313892515355e38], [0x0001, 2 ** -133],
    [0x7f80, Infinity], [0xff80, -Infinity], [0x8000, -0], [0x3c23, 163 * 2 ** -14],
  ];
  for (const [bits, value] of f16) assert.ok(Object.is(f16ToF32(bits), value), `f16 ${bits.toString(16)}`);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  const bytes = rawFile([
    { name: 'h', dtype: 'F16', shape: [2, 5], bytes: u16(f16.map(([b]) => b)) },
    { name: 'b', dtype: 'BF16', shape: [9], bytes: u16(bf16.map(([b]) => b)) },
    { name: 'n', dtype: 'BF16', shape: [1], bytes: u16([0x7fc0]) },
  ], false);
  const { weights, dtypes } = decodeSafetensors(bytes, 'mixed.safetensors');
  assert.deepEqual(weights.get('h')!.shape, [2, 5]);
  f16.forEach(([bits, v], i) => assert.ok(Object.is(weights.get('h')!.data[i], v), `F16 ${bits.toString(16)} -> ${weights.get('h')!.data[i]}`));
  bf16.forEach(([bits, v], i) => assert.ok(Object.is(weights.get('b')!.data[i], Math.fround(v)), `BF16 ${bits.toString(16)} -> ${weights.get('b')!.data[i]}`));
  assert.ok(Number.isNaN(weights.get('n')!.data[0]));
  assert.equal(dtypes.get('h'), 'F16');
  assert.equal(dtypes.get('b'), 'BF16');
});

test('a sharded set: shards plus model.safetensors.index.json read back as one set; tensors in the wrong shard are errors', async () => {
  const dir = path.join(root, 'sharded');
  const weights: NamedWeights = new Map(Array.from({ length: 5 }, (_, i) => [`t${i}`, { shape: [4, 4], data: Float32Array.from({ length: 16 }, (_, j) => i * 100 + j) }]));
  const files = await writeSafetensorsSharded(dir, weights, 140);
  assert.deepEqual(files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', SAFETENSORS_INDEX_FILE]);
  const index = JSON.parse(await fs.readFile(path.join(dir, SAFETENSORS_INDEX_FILE), 'utf8'));
  assert.equal(index.metadata.total_size, 5 * 64);
  assert.equal(index.weight_map.t4, 'model-00003-of-00003.safetensors');
  const back = await readSafetensorsDir(dir);
  assert.deepEqual([...back.weights.keys()].sort(), ['t0', 't1', 't2', 't3', 't4']);
  for (const [name, t] of weights) assert.deepEqual(back.weights.get(name)!.data, t.data);
  assert.equal(back.fileOf.get('t0'), path.join(dir, 'model-00001-of-00003.safetensors'));
  // The index names a tensor its shard does not hold.
  index.weight_map.t4 = 'model-00001-of-00003.safetensors';
  await fs.writeFile(path.join(dir, SAFETENSORS_INDEX_FILE), JSON.stringify(index));
  await assert.rejects(readSafetensorsDir(dir), (err: Error) => err.message.includes(path.join(dir, 'model-00001-of-00003.safetensors')) && err.message.includes('missing tensor t4'));
  // Everything fits in one shard: a single model.safetensors, no index.
  const single = path.join(root, 'single');
  assert.deepEqual(await writeSafetensorsSharded(single, weights, 1e9), ['model.safetensors']);
  assert.equal((await readSafetensorsDir(single)).weights.size, 5);
  await assert.rejects(readSafetensorsDir(path.join(root, 'nothing-here')), /no model\.safetensors and no model\.safetensors\.index\.json/);
});

test('errors name the file and the tensor: truncated, unknown dtype, shape vs bytes, gaps, bad header', async () => {
  const good = encodeSafetensors(sample());
  const file = 'w.safetensors';
  assert.throws(() => decodeSafetensors(good.subarray(0, good.length - 4), file), (e: Error) => e.message.startsWith(`${file}: tensor scalar: truncated file`));
  assert.throws(() => decodeSafetensors(good.subarray(0, 20), file), /w\.safetensors: truncated safetensors file: the header says \d+ bytes/);
  assert.throws(() => decodeSafetensors(good.subarray(0, 5), file), /w\.safetensors: truncated safetensors file: 5 bytes/);
  const i64 = rawFile([{ name: 'ids', dtype: 'I64', shape: [2], bytes: new Uint8Array(16) }]);
  assert.throws(() => decodeSafetensors(i64, file), /^Error: w\.safetensors: tensor ids: dtype I64 is not supported \(F32, F16 and BF16 are\)$/);
  const wrong = rawFile([{ name: 'x', dtype: 'F16', shape: [3], bytes: new Uint8Array(8) }]);
  assert.throws(() => decodeSafetensors(wrong, file), /w\.safetensors: tensor x: shape \[3\] of F16 needs 6 bytes, data_offsets \[0, 8\] give 8/);
  const gap = rawFile([{ name: 'x', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) }]);
  const header = JSON.parse(Buffer.from(gap.subarray(8, 8 + Number(new DataView(gap.buffer).getBigUint64(0, true)))).toString());
  assert.equal(header.x.data_offsets[0], 0);
  const trailing = new Uint8Array(gap.length + 4);
  trailing.set(gap);
  assert.throws(() => decodeSafetensors(trailing, file), /w\.safetensors: the tensors cover 4 bytes of data, the file holds 8/);
  const notJson = new Uint8Array(16);
  new DataView(notJson.buffer).setBigUint64(0, 8n, true);
  notJson.set(Buffer.from('{"a": 1 '), 8);
  assert.throws(() => decodeSafetensors(notJson, file), /w\.safetensors: not a safetensors file: the header is not UTF-8 JSON/);
  await assert.rejects(readSafetensors(path.join(root, 'absent.safetensors')), /absent\.safetensors: cannot read \(ENOENT\)/);
});

// Against the reference implementation (huggingface/safetensors' Python package), when a Python
// with `safetensors` and `numpy` (and optionally torch, for BF16; the same variable serves tokenizer-parity.test.ts) is named by
// LIMA_HF_PYTHON, e.g. a venv made with `python3 -m venv --system-site-packages` on
// Debian's python3-torch plus `pip install safetensors`. Checked with safetensors 0.8.0 and torch 1.13.
const referencePython = process.env.LIMA_HF_PYTHON;
test('the reference implementation reads our files and we read its F32, F16 and BF16 files', { skip: referencePython ? false : 'LIMA_HF_PYTHON is not set' }, async () => {
  const { execFileSync } = await import('node:child_process');
  const ours = path.join(root, 'for-python.safetensors');
  await writeSafetensors(ours, sample(), { format: 'pt' });
  const theirs = path.join(root, 'from-python.safetensors');
  const script = `
import sys, json, numpy as np
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1])
out = {k: [list(v.shape), str(v.dtype), v.astype("<f4").tobytes().hex()] for k, v in t.items()}
vals = {"a32": np.array([[0.1, -2.5, 1e-40]], dtype=np.float32), "h16": np.array([1, 0.3333, -65504, 6e-8], dtype=np.float16)}
save_file(vals, sys.argv[2], metadata={"format": "np"})
expect = {k: v.astype(np.float64).ravel().tolist() for k, v in vals.items()}
try:
    import torch
    from safetensors.torch import load_file as tload, save_file as tsave
    b = torch.tensor([1.0, -3.140625, 0.0099, 1e-30, 3e38], dtype=torch.bfloat16)
    tsave({"b": b}, sys.argv[2] + ".bf16")
    expect["b"] = b.float().tolist()
except ImportError:
    pass
print(json.dumps({"read": out, "expect": expect}))
`;
  const result = JSON.parse(execFileSync(referencePython!, ['-c', script, ours, theirs]).toString()) as {
    read: Record<string, [number[], string, string]>;
    expect: Record<string, number[]>;
  };
  for (const [name, t] of sample()) {
    const [shape, dtype, values] = result.read[name]!;
    assert.deepEqual(shape, t.shape, name);
    assert.equal(dtype, 'float32');
    assert.equal(values, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex'), `${name} bit for bit`);
  }
  const back = await readSafetensors(theirs);
  assert.deepEqual([...back.weights.get('a32')!.data], result.expect.a32);
  assert.deepEqual([...back.weights.get('h16')!.data], result.expect.h16);
  assert.equal(back.dtypes.get('h16'), 'F16');
  if (result.expect.b) {
    const bf = await readSafetensors(`${theirs}.bf16`);
    assert.equal(bf.dtypes.get('b'), 'BF16');
    assert.deepEqual([...bf.weights.get('b')!.data], result.expect.b);
  }
});
