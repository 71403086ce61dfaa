// From judge replies to metrics: an LLM judge against a local chat-completions server, the
// experiment's quality rows, analyze(): invalid judgments arrive per epoch by reason.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createJudge, judgeAll, validateJudgeConfig, type JudgeInput } from '../../src/judge/index.ts';
import { analyze, type AnalysisInput } from '../../src/analysis/index.ts';
import { qualityRows } from '../../src/cli/experiment.ts';

process.env.LIMA_QUIET = '1';

// The judge's reply (and finish_reason) for each generation, keyed by the generation's text.
const REPLIES: Record<string, { content: string; finish?: string }> = {
  'e1-a': { content: 'Relevant.\n4' },
  'e1-b': { content: 'Step 1: it lists 3 items and', finish: 'length' },
  'e1-c': { content: "I'm sorry, I can't grade this; it mentions 2 people" },
  'e2-a': { content: 'Rating: [[5]]' },
  'e2-b': { content: 'Score: 4\n\n5' },
  'e2-c': { content: 'Step 1: it lists 3 items and', finish: 'length' },
};

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const prompt: string = JSON.parse(body).messages[0].content;
    const key = /\[Submission\]: (e\d-[a-c])/.exec(prompt)![1]!;
    const r = REPLIES[key]!;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: r.content }, finish_reason: r.finish ?? 'stop' }] }));
  });
});
after(() => {
  server.closeAllConnections();
  server.close();
});

test('invalid judgments reach the analysis with their reasons and are counted per epoch', async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  const judge = createJudge(validateJudgeConfig({ kind: 'llm', baseUrl, model: 'm', maxRetries: 0 }, 'test'), {});
  const generations = Object.keys(REPLIES).map((key) => ({ epoch: Number(key[1]), exampleId: key.slice(3), sample: 0, key }));
  const inputs: JudgeInput[] = generations.map((g) => ({ id: `${g.epoch}:${g.exampleId}:0`, prompt: 'Define "ephemeral".', response: g.key }));
  const judgments = await judgeAll(judge, inputs, { concurrency: 2 });

  const rows = qualityRows(generations, judgments);
  assert.deepEqual(rows, [
    { epoch: 1, exampleId: 'a', sample: 0, score: 4 },
    { epoch: 1, exampleId: 'b', sample: 0, score: null, invalidReason: 'truncated' },
    { epoch: 1, exampleId: 'c', sample: 0, score: null, invalidReason: 'refusal' },
    { epoch: 2, exampleId: 'a', sample: 0, score: 5 },
    { epoch: 2, exampleId: 'b', sample: 0, score: null, invalidReason: 'ambiguous' },
    { epoch: 2, exampleId: 'c', sample: 0, score: null, invalidReason: 'truncated' },
  ]);

  const input: AnalysisInput = {
    epochs: [
      { epoch: 1, trainLoss: 2 },
      { epoch: 2, trainLoss: 1.5 },
    ],
    perplexity: [1, 2].map((epoch) => ({ epoch, exampleId: 'h', nll: 10, tokens: 5, bytes: 20 })),
    quality: rows,
    window: [1, 2],
    bootstrap: 10,
    seed: 1,
    judge: { kind: judge.kind, description: judge.describe() },
    data: { train: 1, heldout: 1, dev: 3 },
    backend: {},
    durationsSeconds: {},
  };
  const m = analyze(input);
  assert.deepEqual(
    m.epochs.map((e) => [e.quality.mean, e.quality.invalid, e.quality.invalidByReason]),
    [
      [4, 2, { refusal: 1, truncated: 1 }],
      [5, 2, { ambiguous: 1, truncated: 1 }],
    ],
  );
});
