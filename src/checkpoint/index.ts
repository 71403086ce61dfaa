// Checkpoint formats: the one place that writes and reads model checkpoints. Training writes
// through it and evaluation reads through it, so neither imports the other. A stage before
// train and eval: it may import src/model/ and src/util/ only.
//
// Formats: native.ts, this harness's own (checkpoints/<run>/epoch-NN/). Every loaded
// checkpoint carries the content hash of its weights (hash.ts), the same whichever format
// or run wrote them, and its tokenizer's content hash.
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
