// The evaluation fixture shared by the pool tests and their child process: checkpoints are
// written once per run dir (reused when present) and the inputs are deterministic.
import { promises as fs } from 'node:fs';
import type { EvalConfig } from '../../src/eval/config.ts';
import { defaultEvalConfig } from '../../src/eval/config.ts';
import { listCheckpoints } from '../../src/checkpoint/index.ts';
import { makeRecords, writeCheckpoints } from './helpers.ts';

export const fixtureConfig: EvalConfig = {
  ...defaultEvalConfig,
  workers: 2,
  maxLength: 64,
  batchTokens: 192,
  generation: { ...defaultEvalConfig.generation, samples: 2, maxNewTokens: 24 },
};

export async function evalFixture(runDir: string) {
  let checkpoints = await listCheckpoints(runDir);
  if (checkpoints.length === 0) {
    await fs.mkdir(runDir, { recursive: true });
    checkpoints = (await writeCheckpoints(runDir, 3)).list;
  }
  // A few held-out conversations longer than the 64-token window: a long prompt (cut from the
  // left) and long answers (rolling windows).
  const long = makeRecords('held-long', 3, 5).map((r, i) => ({
    ...r,
    turns: [
      { role: 'user' as const, content: i === 0 ? Array(12).fill(r.turns[0]!.content).join(' ') : r.turns[0]!.content },
      { role: 'assistant' as const, content: i === 0 ? 'light scatters in air.' : Array(8).fill(r.turns[1]!.content).join(' ') },
    ],
  }));
  return { checkpoints, heldout: [...makeRecords('held', 120, 1), ...long], dev: makeRecords('dev', 12, 2), config: fixtureConfig, seed: 1234 };
}
