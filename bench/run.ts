// npm run bench -- <train|eval|queue|all> [--quick]: runs each benchmark script in its own process
// (so one's memory and threads don't disturb the other) and passes its output through.
// Each script's last stdout line is one JSON object with its figures.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const known = ['train', 'eval', 'queue'];
const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const names = args.filter((a) => !a.startsWith('--'));
const selected = names.length === 0 || names.includes('all') ? known : names;
const unknown = selected.filter((n) => !known.includes(n));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')} (known: ${known.join(', ')}, all)`);
  process.exit(2);
}
let failed = false;
for (const name of selected) {
  console.log(`== bench ${name}`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, `${name}.ts`), ...flags], { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`bench ${name} failed with exit code ${result.status}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
