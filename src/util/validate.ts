// Small helpers for validating JSON configs: every error names the key path (and the file,
// through `where`), and unknown keys are errors rather than silently ignored typos.
import { truncate } from './text.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function expectObject(value: unknown, where: string, allowed?: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${where}: expected an object, got ${describe(value)}`);
  }
  const obj = value as Record<string, unknown>;
  if (allowed) {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) {
        throw new ConfigError(`${where}.${key}: unknown key (allowed: ${allowed.join(', ')})`);
      }
    }
  }
  return obj;
}

export function expectNumber(value: unknown, where: string, opts: { min?: number; max?: number; integer?: boolean } = {}): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(`${where}: expected a number, got ${describe(value)}`);
  if (opts.integer && !Number.isInteger(value)) throw new ConfigError(`${where}: expected an integer, got ${value}`);
  if (opts.min !== undefined && value < opts.min) throw new ConfigError(`${where}: must be >= ${opts.min}, got ${value}`);
  if (opts.max !== undefined && value > opts.max) throw new ConfigError(`${where}: must be <= ${opts.max}, got ${value}`);
  return value;
}

export function expectString(value: unknown, where: string, choices?: readonly string[]): string {
  if (typeof value !== 'string' || value.length === 0) throw new ConfigError(`${where}: expected a non-empty string, got ${describe(value)}`);
  if (choices && !choices.includes(value)) throw new ConfigError(`${where}: expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

export function expectBoolean(value: unknown, where: string): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(`${where}: expected true or false, got ${describe(value)}`);
  return value;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(truncate(value, 40))}`;
  return `${typeof value} ${typeof value === 'object' ? '' : JSON.stringify(value)}`.trim();
}
