// Checkpoint formats: the one place that writes and reads model checkpoints. Training writes
// through it and evaluation reads through it, so neither imports the other. A stage before
// train and eval: it may import src/model/ and src/util/ only.
//
// Formats: native.ts, this harness's own (checkpoints/<run>/epoch-NN/); hf.ts, Hugging Face
// GPT-2, Llama and Mistral folders (hf-llama.ts; config.json + safetensors.ts's model.safetensors or a sharded set), read and
// written. Every loaded checkpoint carries the content hash of its weights (hash.ts), the same
// whichever format or run wrote them, and its tokenizer's content hash.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, type LoadedCheckpoint } from './native.ts';
import { loadHfCheckpoint } from './hf.ts';

export {
  epochDirName,
  listCheckpoints,
  loadCheckpoint,
  verifyCheckpoint,
  writeCheckpoint,
  type CheckpointContent,
  type CheckpointManifest,
  type LoadedCheckpoint,
} from './native.ts';
export { tokenizerHash, weightsHash } from './hash.ts';
export { fromHfLlamaTensors, hfLlamaConfig, hfLlamaName, llamaConfigFromHf, toHfLlamaTensors } from './hf-llama.ts';
export { listSeries, type SeriesCheckpoint, type SeriesFormat, type SeriesSpec, type TrainerLogged } from './series.ts';
export { fromHfGpt2Tensors, hfGpt2Config, hfGpt2Name, loadHfCheckpoint, modelConfigFromHf, toHfGpt2Tensors, writeHfGpt2, writeHfLlama, type HfExportFiles, type HfSpecialTokens } from './hf.ts';
export {
  decodeSafetensors,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  parseSafetensorsHeader,
  readSafetensors,
  readSafetensorsDir,
  writeSafetensors,
  writeSafetensorsSharded,
  SAFETENSORS_FILE,
  SAFETENSORS_INDEX_FILE,
} from './safetensors.ts';

/** Which format a checkpoint folder is in: ours has manifest.json, an HF folder config.json with model_type. */
export async function checkpointFormat(dir: string): Promise<'native' | 'hf'> {
  const exists = async (name: string) => fs.access(path.join(dir, name)).then(() => true, () => false);
  try {
    if (!(await fs.stat(dir)).isDirectory()) throw new Error(`${dir}: not a directory (a checkpoint is a folder)`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${dir}: no such checkpoint folder`);
    throw err;
  }
  if (await exists('manifest.json')) return 'native';
  if (await exists('config.json')) return 'hf';
  throw new Error(`${dir}: neither a lima-harness checkpoint (manifest.json) nor a Hugging Face folder (config.json)`);
}

/** Loads our checkpoint or an HF GPT-2 / Llama / Mistral folder, whichever `dir` is (checkpointFormat). */
export async function loadAnyCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  return (await checkpointFormat(dir)) === 'native' ? loadCheckpoint(dir) : loadHfCheckpoint(dir);
}
