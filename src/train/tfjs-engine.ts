// The tfjs training engine (wasm, native tfjs-node(-gpu), pure-JS cpu): the GPT of
// src/model/gpt.ts differentiated by tfjs, AdamW on tfjs variables.
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../model/config.ts';
import type { NamedWeights } from '../model/weights.ts';
import { toParams, fromParams, disposeParams, maskedNll, type Params } from '../model/gpt.ts';
import { createAdamWState, adamwStep, serializeAdamW, restoreAdamW, disposeAdamW, type AdamWSettings, type AdamWState } from './adamw.ts';
import { makeBatchArrays, type TrainExample } from './batch.ts';
import type { TrainEngine, StepResult } from './engine.ts';

export interface Batch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  mask: tf.Tensor2D;
  /** Input positions that are not padding (throughput). */
  tokens: number;
  /** Scored targets (loss denominator). */
  scored: number;
}

/** Right-padded batch as tensors (see batch.ts makeBatchArrays). */
export function makeBatch(examples: TrainExample[]): Batch {
  const b = makeBatchArrays(examples);
  const shape: [number, number] = [b.batch, b.length];
  return { inputs: tf.tensor2d(b.inputs, shape, 'int32'), targets: tf.tensor2d(b.targets, shape, 'int32'), mask: tf.tensor2d(b.mask, shape), tokens: b.tokens, scored: b.scored };
}

export function disposeBatch(b: Batch): void {
  b.inputs.dispose();
  b.targets.dispose();
  b.mask.dispose();
}

/** One optimisation step; returns the batch's mean loss over scored targets. */
export function trainStep(params: Params, model: ModelConfig, state: AdamWState, batch: Batch, lr: number, train: AdamWSettings, dropout: number[] | undefined, dropoutSeed: number): number {
  const variables = [...params.values()];
  const { value, grads } = tf.tidy(() =>
    tf.variableGrads(() => maskedNll(params, model, batch.inputs, batch.targets, batch.mask, { dropout, dropoutSeed }), variables),
  );
  const byName: Record<string, tf.Tensor> = {};
  for (const [name, v] of params) byName[name] = grads[v.name]!;
  const loss = value.dataSync()[0]!;
  value.dispose();
  if (!Number.isFinite(loss)) {
    for (const g of Object.values(byName)) g.dispose();
    throw new Error(`training diverged: loss is ${loss} at optimizer step ${state.step + 1} (lower train.lr or train.lrScale)`);
  }
  adamwStep(params, byName, state, lr, train);
  return loss;
}

export function createTfjsEngine(model: ModelConfig, weights: NamedWeights, settings: AdamWSettings): TrainEngine {
  const params = toParams(weights);
  const state = createAdamWState(params);
  return {
    async step(examples, lr, dropout, dropoutSeed): Promise<StepResult> {
      const batch = makeBatch(examples);
      try {
        const loss = trainStep(params, model, state, batch, lr, settings, dropout, dropoutSeed);
        return { loss, tokens: batch.tokens, scored: batch.scored };
      } finally {
        disposeBatch(batch);
      }
    },
    async loss(examples): Promise<StepResult> {
      const batch = makeBatch(examples);
      try {
        const value = tf.tidy(() => maskedNll(params, model, batch.inputs, batch.targets, batch.mask));
        const loss = value.dataSync()[0]!;
        value.dispose();
        return { loss, tokens: batch.tokens, scored: batch.scored };
      } finally {
        disposeBatch(batch);
      }
    },
    weights: () => fromParams(params),
    serializeOptimizer: () => serializeAdamW(params, state),
    restoreOptimizer: (bin, json, where) => restoreAdamW(params, state, bin, json, where),
    async dispose() {
      disposeParams(params);
      disposeAdamW(state);
    },
  };
}
