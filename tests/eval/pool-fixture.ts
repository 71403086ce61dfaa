// The evaluation fixture shared by the pool tests and their child process: checkpoints are
// written once per run dir (reused when present) and the inputs are deterministic.
import { promises as fs } from 'node:fs';
import type { EvalConfig } from '../../src/eval/config.ts';
import { defaultEvalConfig } from '../../src/eval/config.ts';
import { listCheckpoints } from '../../src/train/checkpoint.ts';
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
  return { checkpoints, heldout: makeRecords('held', 120, 1), dev: makeRecords('dev', 12, 2), config: fixtureConfig, seed: 1234 };
}
