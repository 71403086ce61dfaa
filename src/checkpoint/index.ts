// Checkpoint formats: the one place that writes and reads model checkpoints. Training writes
// through it and evaluation reads through it, so neither imports the other. A stage before
// train and eval: it may import src/model/ and src/util/ only.
//
// Formats: native.ts, this harness's own (checkpoints/<run>/epoch-NN/); hf.ts, Hugging Face
// GPT-2, Llama and Mistral folders (hf-llama.ts; config.json + safetensors.ts's model.safetensors
// or a sharded set), read and written; gguf.ts, llama-family GGUF files (one file per checkpoint,
// tokenizer inside), read. Every loaded checkpoint carries the content hash of its weights (hash.ts), the same
// whichever format or run wrote them, and its tokenizer's content hash. Every reader refuses
// weights holding NaN or ±Infinity (finite.ts: a diverged run), naming the file and tensor;
// HF trainer JSON may hold Python's NaN / Infinity (json.ts).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadCheckpoint, type LoadedCheckpoint } from './native.ts';
import { loadHfCheckpoint } from './hf.ts';
import { loadGgufCheckpoint } from './gguf.ts';

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
export { ggufPlace, ggufPositionUnit, isGgufName, listSeries, seriesPositionUnit, type PositionUnit, type SeriesCheckpoint, type SeriesFormat, type SeriesSpec, type TrainerLogged } from './series.ts';
export { fromHfGpt2Tensors, hfGpt2Config, hfGpt2Name, loadHfCheckpoint, modelConfigFromHf, toHfGpt2Tensors, writeHfGpt2, writeHfLlama, type HfExportFiles, type HfSpecialTokens } from './hf.ts';
export {
  decodeGgufTensor,
  fromGgufLlamaTensors,
  ggufLlamaConfig,
  loadGgufCheckpoint,
  parseGgufHeader,
  permuteRope,
  readGguf,
  unpermuteRope,
  type GgufFile,
  type GgufHeader,
  type GgufTensorInfo,
  type GgufValue,
} from './gguf.ts';
export { ggufTokenizer, ggufToTokenizerJson, ggufTokenizerConfig, spmMerges } from './gguf-tokenizer.ts';
export {
  decodeSafetensors,
  encodeSafetensors,
  openSafetensors,
  f16ToF32,
  f32ToBf16,
  parseSafetensorsHeader,
  readSafetensors,
  type SafetensorsReader,
  readSafetensorsDir,
  writeSafetensors,
  writeSafetensorsSharded,
  SAFETENSORS_FILE,
  SAFETENSORS_INDEX_FILE,
} from './safetensors.ts';

/**
 * Which format a checkpoint is in: a file ending `.gguf` is a GGUF checkpoint; a folder with
 * manifest.json is ours, one with config.json (model_type) a Hugging Face folder.
 */
export async function checkpointFormat(dir: string): Promise<'native' | 'hf' | 'gguf'> {
  const exists = async (name: string) => fs.access(path.join(dir, name)).then(() => true, () => false);
  try {
    const stat = await fs.stat(dir);
    if (stat.isFile() && dir.toLowerCase().endsWith('.gguf')) return 'gguf';
    if (!stat.isDirectory()) throw new Error(`${dir}: not a directory (a checkpoint is a folder or a .gguf file)`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${dir}: no such checkpoint folder or file`);
    throw err;
  }
  if (await exists('manifest.json')) return 'native';
  if (await exists('config.json')) return 'hf';
  throw new Error(`${dir}: neither a lima-harness checkpoint (manifest.json) nor a Hugging Face folder (config.json)`);
}

/** Loads our checkpoint, an HF folder (GPT-2, Llama, Mistral) or a GGUF file, whichever `dir` is (checkpointFormat). */
export async function loadAnyCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const format = await checkpointFormat(dir);
  if (format === 'gguf') return loadGgufCheckpoint(dir);
  return format === 'native' ? loadCheckpoint(dir) : loadHfCheckpoint(dir);
}
