// What a training loop needs from an engine, whichever library runs the step: one optimizer step
// on a batch of examples, the current weights, and the optimizer state (checkpoint format shared
// by both engines, so a run can resume on either).
import type { ModelConfig } from '../model/config.ts';
import type { NamedWeights } from '../model/weights.ts';
import type { AdamWSettings } from './adamw.ts';
import type { BackendChoice } from './backend.ts';
import type { TrainExample } from './batch.ts';

export interface StepResult {
  /** Mean loss over the batch's scored targets. */
  loss: number;
  /** Non-padding input positions. */
  tokens: number;
  /** Scored targets. */
  scored: number;
}

export interface TrainEngine {
  /** Forward, backward and one AdamW step; `dropout` per layer (none when absent), masks from `dropoutSeed`. */
  step(examples: TrainExample[], lr: number, dropout: number[] | undefined, dropoutSeed: number): Promise<StepResult>;
  /** Mean loss over the scored targets of `examples` with the current weights, no dropout and no update (validation). */
  loss(examples: TrainExample[]): Promise<StepResult>;
  /** A copy of the current weights. */
  weights(): NamedWeights;
  serializeOptimizer(): { bin: Uint8Array; json: string };
  restoreOptimizer(bin: Uint8Array, json: string, where: string): void;
  dispose(): Promise<void>;
}

/** The engine for an initialised backend (see backend.ts): onnxruntime for 'ort', tfjs otherwise. */
export async function createEngine(backend: BackendChoice, model: ModelConfig, weights: NamedWeights, settings: AdamWSettings): Promise<TrainEngine> {
  if (backend.name === 'ort') {
    const { createOrtEngine } = await import('./ort-engine.ts');
    return createOrtEngine(model, weights, settings, backend.threads ?? 1);
  }
  const { createTfjsEngine } = await import('./tfjs-engine.ts');
  return createTfjsEngine(model, weights, settings);
}
