// Non-finite weights (issue 13): a diverged run saves NaN or ±Infinity, and a model holding them
// scores every token as NaN and samples no valid id, so evaluation would fail far from the cause
// (or print nll null). Every checkpoint reader (native, HF, GGUF) checks the tensors it read
// here, under the names and files they have on disk, before anything is evaluated.
import type { WeightTensor } from '../model/weights.ts';

/**
 * Throws when any tensor holds NaN or ±Infinity: `<file>: tensor <name>: <count> of <size> values
 * are not finite (<nan> NaN, <inf> ±Infinity)`, plus how many other tensors are affected and the
 * total, ending "the run diverged? exclude it from the series". `tensors` are named as in the
 * file; `fileOf` gives the file a tensor was read from. Tensors are checked in the map's order and
 * the first affected one is named. Returns nothing when every value is finite.
 */
export function checkFiniteTensors(tensors: ReadonlyMap<string, WeightTensor>, fileOf: (name: string) => string): void {
  let first: { name: string; nan: number; inf: number; size: number } | undefined;
  let affected = 0;
  let total = 0;
  for (const [name, t] of tensors) {
    const data = t.data;
    let nan = 0;
    let inf = 0;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v - v !== 0) {
        if (v !== v) nan++;
        else inf++;
      }
    }
    if (nan + inf === 0) continue;
    affected++;
    total += nan + inf;
    first ??= { name, nan, inf, size: data.length };
  }
  if (!first) return;
  const others = affected > 1 ? `; ${affected - 1} more tensor${affected > 2 ? 's' : ''} affected, ${total} non-finite values in all` : '';
  throw new Error(
    `${fileOf(first.name)}: tensor ${first.name}: ${first.nan + first.inf} of ${first.size} values are not finite (${first.nan} NaN, ${first.inf} ±Infinity)${others}: the run diverged? exclude it from the series`,
  );
}
