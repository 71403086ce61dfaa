// Picks the training engine: onnxruntime's CPU engine ('ort', src/train/ort-engine.ts) or a tfjs
// backend. 'auto' is tfjs-node-gpu when its GPU device loads, else 'ort'. The native packages (tfjs-node / -node-gpu) cannot install here, and
// node_modules/@tensorflow/tfjs-node may be plain tfjs via an npm override, so a native backend is
// detected by the backend's NAME ('tensorflow') after setBackend, never by whether an import resolves.
import path from 'node:path';
import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';

export type BackendPref = 'auto' | 'ort' | 'tensorflow' | 'wasm' | 'cpu';
export interface BackendChoice {
  name: string;
  detail: string;
  /** Intra-op threads of the 'ort' engine. */
  threads?: number;
}
export interface BackendOptions {
  /** Threads for 'ort': 'auto' (default) = every core. */
  threads?: number | 'auto';
}

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

/** tfjs-node-gpu with a GPU device: the only case where tfjs beats the onnxruntime CPU engine. */
async function tryNativeGpu(): Promise<BackendChoice | null> {
  const choice = await tryNative('@tensorflow/tfjs-node-gpu');
  if (!choice) return null;
  // NodeJSKernelBackend.isUsingGpuDevice: false when libtensorflow found no usable GPU.
  if ((tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice !== true) return null;
  return { ...choice, detail: `${choice.detail}, GPU` };
}

async function useOrt(threads: number | 'auto' | undefined): Promise<BackendChoice> {
  const count = threads === undefined || threads === 'auto' ? os.availableParallelism() : threads;
  if (!Number.isInteger(count) || count < 1) throw new Error(`train.threads: expected a positive integer or "auto", got ${JSON.stringify(threads)}`);
  const { ortVersion } = await import('./ort-engine.ts');
  return { name: 'ort', detail: `onnxruntime-node ${ortVersion()} (cpu, ${count} thread${count === 1 ? '' : 's'})`, threads: count };
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

export async function initBackend(pref: BackendPref, options: BackendOptions = {}): Promise<BackendChoice> {
  let choice: BackendChoice | null = null;
  if (pref === 'auto' || pref === 'ort') {
    choice = (pref === 'auto' ? await tryNativeGpu() : null) ?? (await useOrt(options.threads));
    if (choice.name === 'ort') {
      process.stderr.write(`training engine: ort (${choice.detail})\n`);
      return choice;
    }
  } else if (pref === 'tensorflow') {
    choice = (await tryNative('@tensorflow/tfjs-node-gpu')) ?? (await tryNative('@tensorflow/tfjs-node'));
    if (!choice) throw new Error("backend 'tensorflow' requested but no native tfjs backend is installed (try 'wasm' or 'auto')");
  } else if (pref === 'wasm') {
    choice = await tryWasm();
    if (!choice) throw new Error("backend 'wasm' requested but @tensorflow/tfjs-backend-wasm could not initialise");
  } else if (pref === 'cpu') {
    choice = await useCpu();
  } else {
    throw new Error(`unknown backend preference '${String(pref)}' (expected auto|ort|tensorflow|wasm|cpu)`);
  }
  await tf.ready();
  process.stderr.write(`tfjs backend: ${choice.name} (${choice.detail})\n`);
  return choice;
}
