// Model shape. Shared by the tfjs model (training), the ONNX exporter and the evaluators.
export interface ModelConfig {
  /** Vocabulary size (tokenizer's, including special tokens). */
  vocab: number;
  /** Maximum sequence length (learned position embeddings). */
  context: number;
  dModel: number;
  layers: number;
  heads: number;
}

/** Throws a clear message for a shape that cannot work, before any work is done. */
export function validateModelConfig(config: ModelConfig, where = 'model'): void {
  const intKeys: Array<keyof ModelConfig> = ['vocab', 'context', 'dModel', 'layers', 'heads'];
  for (const key of intKeys) {
    const value = config[key];
    if (!Number.isInteger(value) || value <= 0) {
      throw new Error(`${where}.${key} must be a positive integer, got ${JSON.stringify(value)}`);
    }
  }
  if (config.dModel % config.heads !== 0) {
    throw new Error(`${where}.heads (${config.heads}) must divide ${where}.dModel (${config.dModel})`);
  }
}

/** Parameter count of the GPT decoder (output projection tied to the token embedding). */
export function countParams(c: ModelConfig): number {
  const d = c.dModel;
  const perLayer = 2 * d /* ln1 */ + d * 3 * d + 3 * d /* qkv */ + d * d + d /* out */ + 2 * d /* ln2 */ + d * 4 * d + 4 * d + 4 * d * d + d; /* mlp */
  return c.vocab * d + c.context * d + c.layers * perLayer + 2 * d;
}
