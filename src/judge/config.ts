// Judge configuration: the offline rubric (default) or an OpenAI-compatible chat endpoint.
// The API key itself never goes into a config: the config names an environment variable.
import { ConfigError, expectNumber, expectObject, expectString } from '../util/validate.ts';

export interface RubricJudgeConfig {
  kind: 'rubric';
}

export interface LlmJudgeConfig {
  kind: 'llm';
  /** Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1 (no trailing slash). */
  baseUrl: string;
  model: string;
  /** Name of the environment variable holding the API key (read at request time). */
  apiKeyEnv?: string;
  /** Requests in flight at once. */
  concurrency: number;
  /** Per-request timeout (ms), including reading the body. */
  timeoutMs: number;
  /** Retries after the first attempt on network errors, timeouts, 429 and 5xx. */
  maxRetries: number;
  /** A replacement for templates/helpfulness.txt. */
  templatePath?: string;
}

export type JudgeConfig = RubricJudgeConfig | LlmJudgeConfig;

export const defaultJudgeConfig: JudgeConfig = { kind: 'rubric' };

export const LLM_DEFAULTS = { concurrency: 4, timeoutMs: 60_000, maxRetries: 5 } as const;

/** Judgments in flight at once: the llm judge's setting; the rubric is local CPU work. */
export function judgeConcurrency(config: JudgeConfig): number {
  return config.kind === 'llm' ? config.concurrency : 8;
}

const LLM_KEYS = ['kind', 'baseUrl', 'model', 'apiKeyEnv', 'concurrency', 'timeoutMs', 'maxRetries', 'templatePath'] as const;

/** Validates a judge section; `where` names the file and section in every error. */
export function validateJudgeConfig(raw: unknown, where: string): JudgeConfig {
  const obj = expectObject(raw, where);
  // Checked before the unknown-key check so the message says what to do instead. The value
  // is never echoed.
  if ('apiKey' in obj) {
    throw new ConfigError(
      `${where}.apiKey: an API key must never be written in a config; put it in an environment variable and name that variable with "apiKeyEnv" (e.g. "apiKeyEnv": "OPENAI_API_KEY")`,
    );
  }
  const kind = expectString(obj.kind, `${where}.kind`, ['rubric', 'llm']);
  if (kind === 'rubric') {
    expectObject(obj, where, ['kind']);
    return { kind: 'rubric' };
  }
  expectObject(obj, where, LLM_KEYS);
  const baseUrl = validateBaseUrl(expectString(obj.baseUrl, `${where}.baseUrl`), `${where}.baseUrl`);
  const model = expectString(obj.model, `${where}.model`);
  const config: LlmJudgeConfig = {
    kind: 'llm',
    baseUrl,
    model,
    concurrency: expectNumber(obj.concurrency ?? LLM_DEFAULTS.concurrency, `${where}.concurrency`, { integer: true, min: 1, max: 256 }),
    timeoutMs: expectNumber(obj.timeoutMs ?? LLM_DEFAULTS.timeoutMs, `${where}.timeoutMs`, { integer: true, min: 1 }),
    maxRetries: expectNumber(obj.maxRetries ?? LLM_DEFAULTS.maxRetries, `${where}.maxRetries`, { integer: true, min: 0, max: 50 }),
  };
  if (obj.apiKeyEnv !== undefined) {
    const name = expectString(obj.apiKeyEnv, `${where}.apiKeyEnv`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      // Most likely the key itself was pasted here; do not echo it.
      throw new ConfigError(`${where}.apiKeyEnv: must be the NAME of an environment variable (letters, digits, '_'), not the key itself`);
    }
    config.apiKeyEnv = name;
  }
  if (obj.templatePath !== undefined) config.templatePath = expectString(obj.templatePath, `${where}.templatePath`);
  return config;
}

function validateBaseUrl(value: string, where: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${where}: not a URL: ${JSON.stringify(value)} (expected e.g. "http://127.0.0.1:8080/v1")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${where}: expected an http(s) URL, got ${url.protocol}`);
  if (url.username || url.password) throw new ConfigError(`${where}: must not contain credentials; use apiKeyEnv`);
  return value.replace(/\/+$/, '');
}
