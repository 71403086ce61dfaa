// npm run bench -- <train|eval|queue|eval-series|all> [--quick]: runs each benchmark script in its
// own process (so one's memory and threads don't disturb the other) and passes its output through.
// Each script's last stdout line is one JSON object with its figures. `eval` is bench/eval.ts (the
// 1.1M GPT) then bench/eval-llama.ts (a ~34M-parameter HF Llama); `eval-series` (15 checkpoints of
// that Llama through runEvaluation, ~10+ minutes) runs only when named, never under `all`.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const scripts: Record<string, Array<{ file: string; args: string[] }>> = {
  train: [{ file: 'train.ts', args: [] }],
  eval: [
    { file: 'eval.ts', args: [] },
    { file: 'eval-llama.ts', args: [] },
  ],
  queue: [{ file: 'queue.ts', args: [] }],
  'eval-series': [{ file: 'eval-llama.ts', args: ['--series'] }],
};
const known = Object.keys(scripts);
const defaults = ['train', 'eval', 'queue'];
const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const names = args.filter((a) => !a.startsWith('--'));
const selected = names.length === 0 || names.includes('all') ? defaults : names;
const unknown = selected.filter((n) => !known.includes(n));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')} (known: ${known.join(', ')}, all = ${defaults.join(', ')})`);
  process.exit(2);
}
let failed = false;
for (const name of selected) {
  for (const { file, args: extra } of scripts[name]!) {
    console.log(`== bench ${name} (${file}${extra.length > 0 ? ` ${extra.join(' ')}` : ''})`);
    const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, file), ...extra, ...flags], { stdio: 'inherit' });
    if (result.status !== 0) {
      console.error(`bench ${name} (${file}) failed with exit code ${result.status}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
