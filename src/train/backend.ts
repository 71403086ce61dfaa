// Picks the tfjs backend. The native packages (tfjs-node / -node-gpu) cannot install here, and
// node_modules/@tensorflow/tfjs-node may be plain tfjs via an npm override, so a native backend is
// detected by the backend's NAME ('tensorflow') after setBackend, never by whether an import resolves.
import path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

export type BackendPref = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export interface BackendChoice { name: string; detail: string }

const require = createRequire(import.meta.url);

async function tryNative(pkg: string): Promise<BackendChoice | null> {
  try {
    await import(pkg);
  } catch {
    return null; // absence is normal: no stack trace
  }
  try {
    if (!(await tf.setBackend('tensorflow')) || tf.getBackend() !== 'tensorflow') return null;
    return { name: 'tensorflow', detail: `${pkg} (native)` };
  } catch {
    return null;
  }
}

async function tryWasm(): Promise<BackendChoice | null> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(dist + '/');
    if (!(await tf.setBackend('wasm')) || tf.getBackend() !== 'wasm') return null;
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    return { name: 'wasm', detail: `tfjs-backend-wasm simd=${simd} threads=${threads} from ${dist}` };
  } catch (err) {
    process.stderr.write(`wasm backend unavailable: ${(err as Error).message}\n`);
    return null;
  }
}

async function useCpu(): Promise<BackendChoice> {
  await tf.setBackend('cpu');
  return { name: 'cpu', detail: 'tfjs-cpu (pure JS, slow)' };
}

export async function initBackend(pref: BackendPref): Promise<BackendChoice> {
  let choice: BackendChoice | null = null;
  if (pref === 'auto') {
    choice = (await tryNative('@tensorflow/tfjs-node-gpu')) ?? (await tryNative('@tensorflow/tfjs-node')) ?? (await tryWasm()) ?? (await useCpu());
  } else if (pref === 'tensorflow') {
    choice = (await tryNative('@tensorflow/tfjs-node-gpu')) ?? (await tryNative('@tensorflow/tfjs-node'));
    if (!choice) throw new Error("backend 'tensorflow' requested but no native tfjs backend is installed (try 'wasm' or 'auto')");
  } else if (pref === 'wasm') {
    choice = await tryWasm();
    if (!choice) throw new Error("backend 'wasm' requested but @tensorflow/tfjs-backend-wasm could not initialise");
  } else if (pref === 'cpu') {
    choice = await useCpu();
  } else {
    throw new Error(`unknown backend preference '${String(pref)}' (expected auto|tensorflow|wasm|cpu)`);
  }
  await tf.ready();
  process.stderr.write(`tfjs backend: ${choice.name} (${choice.detail})\n`);
  return choice;
}
