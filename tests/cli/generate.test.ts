// `lima-harness generate`: greedy decoding (temperature 0) is deterministic, the same from our
// checkpoint and its HF export, and each token is the argmax of an uncached forward pass over
// prompt + tokens so far; sampling is deterministic in --seed; bad flags name the flag.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { generateCommand } from '../../src/cli/generate-command.ts';
import { exportCommand } from '../../src/cli/export-command.ts';
import { loadCheckpoint } from '../../src/checkpoint/index.ts';
import { exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { tempDir, writeCheckpoints } from '../eval/helpers.ts';

const root = await tempDir('generate');
after(() => fs.rm(root, { recursive: true, force: true }));
const { list, tok } = await writeCheckpoints(path.join(root, 'run'), 1, { context: 48, dModel: 32, layers: 2, heads: 4 });
const native = list[0]!.dir;
const hf = path.join(root, 'hf');
assert.equal(await exportCommand(['--checkpoint', native, '--format', 'hf', '--out', hf], () => {}), 0);

interface Out {
  continuation: string;
  ids: number[];
  newTokens: number;
  endedWithEot: boolean;
  promptTokens: number;
}

async function generate(args: string[]): Promise<Out> {
  const lines: string[] = [];
  assert.equal(await generateCommand([...args, '--json'], (t) => lines.push(t)), 0);
  assert.equal(lines.length, 1);
  return JSON.parse(lines[0]!) as Out;
}

const PROMPT = 'why is the sky blue';

test('greedy: deterministic, the same from the HF export, each token the argmax of a full forward pass', async () => {
  const a = await generate(['--model', native, '--prompt', PROMPT, '--max-new-tokens', '20']);
  const b = await generate(['--model', native, '--prompt', PROMPT, '--max-new-tokens', '20', '--seed', '99']);
  const c = await generate(['--model', hf, '--prompt', PROMPT, '--max-new-tokens', '20']);
  assert.ok(a.newTokens >= 1);
  assert.deepEqual(b, a, 'greedy ignores the seed');
  assert.deepEqual({ ...c, model: undefined }, { ...a, model: undefined });
  assert.equal(a.continuation, tok.decode(a.ids, { skipSpecial: true }));

  const ck = await loadCheckpoint(native);
  const session = await DecoderSession.create(exportOnnxBytes(ck.model, ck.weights), ck.model, { threads: 1 });
  try {
    const prompt = tok.encode(PROMPT);
    const sampled = a.endedWithEot ? [...a.ids, tok.special.eot] : a.ids;
    const all = [...prompt, ...sampled];
    const out = await session.run([all], [all.map(() => 1)], [all.map((_, i) => i)]);
    const vocab = ck.model.vocab;
    sampled.forEach((id, k) => {
      const row = out.logits.subarray((prompt.length + k - 1) * vocab, (prompt.length + k) * vocab);
      let best = 0;
      for (let i = 1; i < vocab; i++) if (row[i]! > row[best]!) best = i;
      assert.equal(id, best, `token ${k}`);
    });
  } finally {
    await session.release();
  }
});

test('sampling: the same seed gives the same continuation, other seeds others', async () => {
  const args = ['--model', hf, '--prompt', PROMPT, '--max-new-tokens', '16', '--temperature', '1.5', '--top-p', '0.95'];
  const first = await generate([...args, '--seed', '1']);
  assert.deepEqual(await generate([...args, '--seed', '1']), first);
  const others = await Promise.all([2, 3, 4].map((s) => generate([...args, '--seed', String(s)])));
  assert.ok(others.some((o) => JSON.stringify(o.ids) !== JSON.stringify(first.ids)), 'some other seed draws other tokens');
  const chat = await generate([...args, '--seed', '1', '--chat']);
  assert.ok(chat.promptTokens > tok.encode(PROMPT).length, '--chat adds the turn markers');
});

test('plain output and bad flags', async () => {
  const lines: string[] = [];
  assert.equal(await generateCommand(['--model', native, '--prompt', PROMPT, '--max-new-tokens', '5'], (t) => lines.push(t)), 0);
  const json = await generate(['--model', native, '--prompt', PROMPT, '--max-new-tokens', '5']);
  assert.deepEqual(lines, [json.continuation]);
  await assert.rejects(generateCommand(['--model', native, '--prompt', PROMPT, '--temperature=-1']), /--temperature: expected 0 \(greedy\) or a number in \[0\.001, 100\], got "-1"/);
  await assert.rejects(generateCommand(['--model', native, '--prompt', PROMPT, '--top-p', '0']), /--top-p: expected a number in \(0, 1\]/);
  await assert.rejects(generateCommand(['--model', native, '--prompt', PROMPT, '--seed', '1.5']), /--seed: expected an integer/);
  await assert.rejects(generateCommand(['--model', native]), /--prompt is required/);
  await assert.rejects(generateCommand(['--model', path.join(root, 'nowhere'), '--prompt', PROMPT]), /nowhere: no such checkpoint folder/);
});
