// Child process for the kill -9 resume test: builds (or reuses) the fixture and runs the
// evaluation into argv[2] (out dir) with checkpoints under argv[3], on the queue at argv[4] if given.
import path from 'node:path';
import { runEvaluation } from '../../src/eval/index.ts';
import { evalFixture } from './pool-fixture.ts';

const [outDir, runDir, queueUrl] = process.argv.slice(2) as [string, string, string | undefined];
const fixture = await evalFixture(runDir);
const queue = queueUrl ? { url: queueUrl, tasksPerJob: 4, tickMs: 200, sweepMs: 1000 } : undefined;
const result = await runEvaluation({ ...fixture, outDir: path.resolve(outDir), quiet: true, queue });
process.stdout.write(JSON.stringify(result.computed) + '\n');
