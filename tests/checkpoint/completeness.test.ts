// A weights file's length from its header (src/checkpoint/completeness.ts), and --watch's use of
// it: a GGUF or safetensors file cut short anywhere (in the header, in the tensor infos, in the
// data) is never counted complete, whatever its size or mtime do; the status says how many bytes
// of how many are there.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { weightsDataEnd, weightsWaitingFor } from '../../src/checkpoint/completeness.ts';
import { encodeSafetensors } from '../../src/checkpoint/safetensors.ts';
import { folderState, StabilityTracker } from '../../src/checkpoint/watch.ts';
import { encodeGguf, f32Bytes, T } from '../helpers/gguf-writer.ts';
import { tempDir } from '../eval/helpers.ts';

const root = await tempDir('completeness');
after(() => fs.rm(root, { recursive: true, force: true }));

/** A GGUF file with a 20k-string vocabulary (header > 64 KiB: several chunk reads), an F32 and a Q8_0 tensor. */
function ggufBytes(): { bytes: Uint8Array; dataEnd: number } {
  const vocab = Array.from({ length: 20_000 }, (_, i) => `token-${i}`);
  const f32 = f32Bytes(Float32Array.from({ length: 12 }, (_, i) => i / 7)); // 48 bytes, padded to 64
  const q8 = new Uint8Array(2 * 34).fill(3); // 64 values of Q8_0: 2 blocks of 34 bytes
  const bytes = encodeGguf({
    metadata: [
      ['general.architecture', T.STR, 'llama'],
      ['tokenizer.ggml.tokens', T.ARR, { type: T.STR, values: vocab }],
      ['tokenizer.ggml.scores', T.ARR, { type: T.F32, values: vocab.map(() => 0) }],
      ['some.u64', T.U64, 7n],
      ['some.bool', T.BOOL, true],
    ],
    tensors: [
      { name: 'a', ne: [4, 3], type: 0, bytes: f32 },
      { name: 'b', ne: [64], type: 8, bytes: q8 },
    ],
    alignment: 64,
  });
  // encodeGguf pads after the last tensor too: its data ends 64 + 68 bytes into the data section.
  return { bytes, dataEnd: bytes.length - (128 - 68) };
}

test('weightsDataEnd (GGUF): the end of the last tensor from the header; a cut in the header is short, a cut in the data is counted in bytes', async () => {
  const { bytes, dataEnd } = ggufBytes();
  assert.ok(bytes.length > 200_000, `header of ${bytes.length} bytes spans several 64 KiB reads`);
  const file = path.join(root, 'model-step1.gguf');
  await fs.writeFile(file, bytes);
  assert.deepEqual(await weightsDataEnd(file, 'gguf'), { kind: 'end', end: dataEnd, size: bytes.length });
  assert.equal(await weightsWaitingFor(file, 'gguf'), undefined);

  const headerEnd = dataEnd - 132;
  // [bytes kept, what it waits for]
  const cuts: Array<[number, RegExp]> = [
    [0, /^its bytes$/],
    [3, /^its header \(3 bytes so far\)$/],
    [24, /^its header \(24 bytes so far\)$/], // counts read, no metadata
    [100_000, /^its header \(100000 bytes so far\)$/], // inside the vocabulary
    [headerEnd - 40, /^its header/], // inside the tensor infos
    [headerEnd, new RegExp(`^${headerEnd} of ${dataEnd} bytes$`)], // header whole, no data
    [headerEnd + 64, new RegExp(`^${headerEnd + 64} of ${dataEnd} bytes$`)], // the first tensor only
    [dataEnd - 1, new RegExp(`^${dataEnd - 1} of ${dataEnd} bytes$`)],
  ];
  for (const [keep, waiting] of cuts) {
    await fs.writeFile(file, bytes.subarray(0, keep));
    assert.match((await weightsWaitingFor(file, 'gguf')) ?? 'complete', waiting, `cut at ${keep}`);
    assert.equal((await folderState(file)).complete, false, `cut at ${keep}`);
  }
  await fs.writeFile(file, bytes.subarray(0, dataEnd)); // no trailing padding: still whole
  assert.equal((await folderState(file)).complete, true);
  await fs.writeFile(file, 'not a gguf file at all');
  assert.match((await weightsWaitingFor(file, 'gguf'))!, /^a valid file \(not a GGUF file \(magic 0x20746f6e\)\)$/);
  assert.deepEqual(await weightsDataEnd(path.join(root, 'absent.gguf'), 'gguf'), { kind: 'short', needAtLeast: 1, size: 0 });
});

test('weightsDataEnd (safetensors): 8 + header length + the largest data_offsets end', async () => {
  const weights = new Map([
    ['w', { shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => i) }],
    ['b', { shape: [5], data: new Float32Array(5) }],
  ]);
  const bytes = encodeSafetensors(weights, { format: 'pt' });
  const file = path.join(root, 'model.safetensors');
  await fs.writeFile(file, bytes);
  assert.deepEqual(await weightsDataEnd(file, 'safetensors'), { kind: 'end', end: bytes.length, size: bytes.length });
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  for (const [keep, waiting] of [
    [5, /^its header \(5 bytes so far\)$/],
    [8 + headerLength - 1, /^its header/],
    [8 + headerLength, new RegExp(`^${8 + headerLength} of ${bytes.length} bytes$`)],
    [bytes.length - 4, new RegExp(`^${bytes.length - 4} of ${bytes.length} bytes$`)],
  ] as Array<[number, RegExp]>) {
    await fs.writeFile(file, bytes.subarray(0, keep));
    assert.match((await weightsWaitingFor(file, 'safetensors')) ?? 'complete', waiting, `cut at ${keep}`);
  }
});

test('--watch: a weights file that stops growing half-way (a writer pausing longer than the poll) is never ready; it is once the rest lands', async () => {
  const weights = new Map([['w', { shape: [64, 64], data: new Float32Array(64 * 64).fill(0.5) }]]);
  const bytes = encodeSafetensors(weights);
  const dir = path.join(root, 'checkpoint-10');
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'config.json'), '{"model_type": "gpt2"}');
  await fs.writeFile(path.join(dir, 'trainer_state.json'), '{"global_step": 10}');
  await fs.writeFile(path.join(dir, 'model.safetensors'), bytes.subarray(0, 5000));
  const tracker = new StabilityTracker();
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(await tracker.observe(dir), { ready: false, waitingFor: `model.safetensors (5000 of ${bytes.length} bytes)` }, `poll ${i}: stable but short`);
  }
  await fs.writeFile(path.join(dir, 'model.safetensors'), bytes);
  assert.equal((await tracker.observe(dir)).ready, false, 'whole now, but seen once');
  assert.deepEqual(await tracker.observe(dir), { ready: true });

  // A single GGUF file paused half-way through its data.
  const { bytes: gguf, dataEnd } = ggufBytes();
  const file = path.join(root, 'run-step20-Q8_0.gguf');
  await fs.writeFile(file, gguf.subarray(0, dataEnd - 50));
  for (let i = 0; i < 3; i++) assert.deepEqual(await tracker.observe(file), { ready: false, waitingFor: `${dataEnd - 50} of ${dataEnd} bytes` });
  await fs.appendFile(file, gguf.subarray(dataEnd - 50));
  assert.equal((await tracker.observe(file)).ready, false);
  assert.deepEqual(await tracker.observe(file), { ready: true });

  // Reading it failed anyway (say, the trainer rewrote it): not ready, waited for until its files change.
  await tracker.failed(file);
  assert.deepEqual(await tracker.observe(file), { ready: false, waitingFor: 'its files to change (reading it failed)' });
  assert.deepEqual(await tracker.observe(file), { ready: false, waitingFor: 'its files to change (reading it failed)' });
  await fs.writeFile(file, gguf);
  assert.deepEqual(await tracker.observe(file), { ready: false, waitingFor: 'its files to stop changing' });
  assert.deepEqual(await tracker.observe(file), { ready: true });
});
