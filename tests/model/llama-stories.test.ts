// Our llama ONNX graph on a real pretrained model no one here wrote: Karpathy's stories260K GGUF
// (../shared/models; skips when absent) against llama.cpp itself (node-llama-cpp, float32 KV
// cache; tests/helpers/llama-cpp-reference.ts). The prompt is encoded by our evaluation's
// tokenizer for the file (checkpointTokenizer: the GGUF metadata through @huggingface/tokenizers)
// with llama.cpp's ids (BOS + text); greedy decoding through the evaluation path (generateIds
// with DecoderSession and its KV cache) gives llama.cpp's 64 tokens, the log-probs of each
// generated token on that path are llama.cpp's during its own generation within 1e-3, and our
// scoring log-probs of the whole sequence are llama.cpp's batched scoring within 1e-3. The same
// weights written as an HF Llama folder (F32) read back with the GGUF file's hash, and score identically.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { loadAnyCheckpoint, loadHfCheckpoint, writeHfLlama } from '../../src/checkpoint/index.ts';
import { exportOnnxBytes } from '../../src/model/onnx-export.ts';
import { DecoderSession } from '../../src/eval/session.ts';
import { generateIds } from '../../src/eval/generate.ts';
import { checkpointTokenizer } from '../../src/eval/checkpoint-tokenizer.ts';
import { openLlamaCpp, type LlamaCppReference } from '../helpers/llama-cpp-reference.ts';
import { sharedSkip, STORIES_GGUF } from '../helpers/shared-models.ts';
import { tempDir } from '../eval/helpers.ts';

let ref: LlamaCppReference | undefined;
after(async () => {
  await ref?.dispose();
});

test('stories260K: our graph decodes greedily token for token as llama.cpp, log-probs within 1e-3; its HF copy hashes and scores the same', { skip: sharedSkip }, async () => {
  const ck = await loadAnyCheckpoint(STORIES_GGUF);
  assert.equal(ck.model.arch, 'llama');
  ref = await openLlamaCpp(STORIES_GGUF, { contextSize: 256 });
  const session = await DecoderSession.create(exportOnnxBytes(ck.model, ck.weights), ck.model, { threads: 1 });
  const tok = await checkpointTokenizer(ck, STORIES_GGUF);
  assert.deepEqual(tok.stopIds, [ref.eos], 'generation stops at the GGUF file\'s EOS');
  for (const opening of ['Once upon a time', 'Tom and his dog went to the park. They']) {
    const prompt = tok.encodeText(opening);
    assert.deepEqual(prompt, [ref.bos!, ...ref.tokenize(opening)], `our prompt ids for ${JSON.stringify(opening)} are llama.cpp's (BOS + text)`);
    const theirs = await ref.greedy(prompt, 64);
    const ours = await generateIds(session, prompt, { samples: 1, topP: 1, temperature: 0, repetitionPenalty: 1, maxNewTokens: 64 }, { seed: 1, eot: tok.stopIds[0]!, stopIds: tok.stopIds.slice(1), logprobs: true });
    // At least 64 tokens compared: neither side stops early on these openings.
    assert.equal(theirs.tokens.length, 64, 'llama.cpp gave 64 tokens');
    assert.equal(ours.endedWithEot, false);
    assert.deepEqual(ours.ids, theirs.tokens, `greedy tokens differ after ${JSON.stringify(opening)}: ours ${JSON.stringify(tok.decode(ours.ids))}, llama.cpp ${JSON.stringify(theirs.text)}`);
    assert.equal(tok.decode(ours.ids, { skipSpecial: true }), theirs.text, 'our decoded text is llama.cpp\'s');
    // Log-probs of each generated token on the generation path (KV cache) against llama.cpp's during its generation.
    let worstGen = 0;
    theirs.logprobs.forEach((l, i) => (worstGen = Math.max(worstGen, Math.abs(l - ours.logprobs![i]!))));
    assert.equal(ours.logprobs!.length, 64);
    assert.ok(worstGen < 1e-3, `max |generation log-prob difference| ${worstGen}`);
    // Log-probs of the whole sequence: our scoring output against llama.cpp's batched scoring.
    const ids = [...prompt, ...theirs.tokens];
    const lp = await session.tokenLogprobs([ids], [ids.map(() => 1)], [ids.map((_, t) => t)]);
    const scored = await ref.score(ids);
    let worst = 0;
    scored.forEach((l, i) => (worst = Math.max(worst, Math.abs(l - lp[i]!))));
    assert.ok(worst < 1e-3, `max |log-prob difference| ${worst}`);
    console.log(`# stories260K after ${JSON.stringify(opening)}: ${theirs.tokens.length} greedy tokens equal; max |log-prob diff| vs llama.cpp: generation (KV cache) ${worstGen.toExponential(2)}, scoring ${worst.toExponential(2)}`);
  }
  // The same weights as an HF Llama folder: the GGUF file's hash, the same log-probs bit for bit.
  const dir = await tempDir('stories-hf');
  try {
    await writeHfLlama(path.join(dir, 'hf'), ck.model, ck.weights, { tokenizer: ck.tokenizer });
    const hf = await loadHfCheckpoint(path.join(dir, 'hf'));
    assert.equal(hf.hash, ck.hash);
    const hfSession = await DecoderSession.create(exportOnnxBytes(hf.model, hf.weights), hf.model, { threads: 1 });
    const ids = [ref.bos!, ...ref.tokenize('Lily saw a big red ball in the garden.')];
    const a = await session.tokenLogprobs([ids], [ids.map(() => 1)], [ids.map((_, t) => t)]);
    const b = await hfSession.tokenLogprobs([ids], [ids.map(() => 1)], [ids.map((_, t) => t)]);
    assert.deepEqual([...b], [...a]);
    await hfSession.release();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  await session.release();
});
