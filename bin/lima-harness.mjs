#!/usr/bin/env node
// Entry point: the project is TypeScript run through tsx's loader, so there is no build step
// between editing and running. Worker threads register tsx themselves (src/eval/).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
