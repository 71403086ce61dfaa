// Child process for the kill -9 resume test: builds (or reuses) the fixture and runs the
// evaluation into argv[2] (out dir) with checkpoints under argv[3].
import path from 'node:path';
import { runEvaluation } from '../../src/eval/index.ts';
import { evalFixture } from './pool-fixture.ts';

const [outDir, runDir] = process.argv.slice(2) as [string, string];
const fixture = await evalFixture(runDir);
const result = await runEvaluation({ ...fixture, outDir: path.resolve(outDir), quiet: true });
process.stdout.write(JSON.stringify(result.computed) + '\n');
