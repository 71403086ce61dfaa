// The LLM judge: any OpenAI-compatible chat-completions endpoint grades each generation on
// LIMA's six-level helpfulness rubric. Requests retry with exponential backoff on network
// errors, timeouts, 429 (honouring Retry-After) and 5xx; other 4xx fail at once.
//
// Failure policy: a judgment that still fails after maxRetries THROWS (naming the input id and
// the last error), which stops the run. Silently recording it as invalid would make an outage
// look like a judge that refuses to answer and bias the per-epoch means; finished judgments
// are already in the cache, so rerunning the same command resumes where it stopped.
//
// Replies are read strictly (parse.ts readChoice): a judgment is valid only when the reply
// states exactly one choice 1-6; a reply cut off by the token limit (finish_reason "length"),
// refused, ambiguous, off-scale or without a choice is invalid with its reason.
//
// The API key is read from the environment at request time and only ever sent as the
// Authorization header: it is never stored in the cache, a judgment, a log or an error.
import path from 'node:path';
import type { LlmJudgeConfig } from './config.ts';
import type { Judge, JudgeInput, Judgment, JudgeStats } from './types.ts';
import { JudgmentCache, judgmentCacheKey } from './cache.ts';
import { loadTemplate, renderTemplate, type JudgeTemplate } from './template.ts';
import { readChoice, reasoningOf } from './parse.ts';
import { deriveSeed, mulberry32 } from '../util/rng.ts';
import { truncate } from '../util/text.ts';

export interface LlmJudgeOptions {
  /** Where judgments are cached (one JSON file per key); no cache when absent. */
  cacheDir?: string;
  fetchImpl?: typeof fetch;
  /** First retry waits about this long (ms), doubling each retry, with jitter in [0.5, 1.5). Default 500. */
  backoffBaseMs?: number;
  /** Upper bound of one backoff wait (ms). Default 30000. */
  backoffMaxMs?: number;
  /** Upper bound of a server's Retry-After (ms), so a huge value cannot hang the run. Default 120000. */
  retryAfterMaxMs?: number;
  /** Seed of the backoff jitter. Default 0. */
  seed?: number;
  /** Where apiKeyEnv is looked up. Default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** An error worth retrying (network, timeout, 429, 5xx); `retryAfterMs` from a Retry-After header. */
class RetryableError extends Error {
  constructor(message: string, readonly retryAfterMs?: number) {
    super(message);
  }
}

interface Completion {
  content: string;
  /** choices[0].finish_reason ("stop", "length", "content_filter", ...), null when absent. */
  finishReason: string | null;
  /** choices[0].message.refusal (OpenAI), null when absent. */
  refusal: string | null;
  usage?: { promptTokens?: number; completionTokens?: number };
}

export function createLlmJudge(config: LlmJudgeConfig, opts: LlmJudgeOptions = {}): Judge {
  const template: JudgeTemplate = loadTemplate(config.templatePath);
  const cache = opts.cacheDir ? new JudgmentCache(opts.cacheDir) : undefined;
  const fetchImpl = opts.fetchImpl ?? fetch;
  const env = opts.env ?? process.env;
  const backoffBaseMs = opts.backoffBaseMs ?? 500;
  const backoffMaxMs = opts.backoffMaxMs ?? 30_000;
  const retryAfterMaxMs = opts.retryAfterMaxMs ?? 120_000;
  const seed = opts.seed ?? 0;
  const url = `${config.baseUrl}/chat/completions`;
  const stats: JudgeStats = { requests: 0, cacheHits: 0, invalid: 0 };
  // Identical inputs judged concurrently share one request.
  const inFlight = new Map<string, Promise<Judgment>>();

  function apiKey(): string | undefined {
    if (!config.apiKeyEnv) return undefined;
    const key = env[config.apiKeyEnv];
    if (!key) throw new Error(`judge llm: the environment variable ${config.apiKeyEnv} (named by apiKeyEnv) is not set`);
    return key;
  }

  /** Removes the key from any text that might reach an error message (servers sometimes echo headers). */
  function redact(text: string, key: string | undefined): string {
    return key && key.length >= 4 ? text.split(key).join('[redacted]') : text;
  }

  async function requestOnce(body: string, key: string | undefined): Promise<Completion> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), config.timeoutMs);
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (key) headers.authorization = `Bearer ${key}`;
      let response: Response;
      let text: string;
      try {
        response = await fetchImpl(url, { method: 'POST', headers, body, signal: controller.signal });
        text = await response.text();
      } catch (err) {
        if (controller.signal.aborted) throw new RetryableError(`timed out after ${config.timeoutMs} ms`);
        throw new RetryableError(`network error: ${describeNetworkError(err)}`);
      }
      if (response.status === 429) {
        throw new RetryableError(`HTTP 429 (rate limited): ${errorMessageOf(text)}`, parseRetryAfter(response.headers.get('retry-after'), retryAfterMaxMs));
      }
      if (response.status >= 500) throw new RetryableError(`HTTP ${response.status}: ${errorMessageOf(text)}`);
      if (!response.ok) throw new Error(`HTTP ${response.status} from ${url}: ${errorMessageOf(text)}`);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        // A 200 with a cut-off body is a transport problem (proxy, restart): worth a retry.
        throw new RetryableError(`the response is not JSON: ${JSON.stringify(truncate(text, 120))}`);
      }
      return completionOf(json, url);
    } finally {
      clearTimeout(timer);
    }
  }

  async function requestWithRetries(input: JudgeInput, cacheKey: string): Promise<Completion> {
    const key = apiKey();
    const body = JSON.stringify({
      model: config.model,
      messages: [{ role: 'user', content: renderTemplate(template.text, input) }],
      temperature: 0,
    });
    for (let attempt = 0; ; attempt++) {
      stats.requests++;
      try {
        return await requestOnce(body, key);
      } catch (err) {
        const message = redact((err as Error).message, key);
        if (!(err instanceof RetryableError)) throw new Error(`judge llm: ${input.id}: ${message} (not retried)`);
        if (attempt >= config.maxRetries) {
          throw new Error(`judge llm: ${input.id}: gave up after ${attempt + 1} attempts (maxRetries ${config.maxRetries}); last error: ${message}`);
        }
        const rng = mulberry32(deriveSeed(seed, cacheKey, attempt));
        const backoff = Math.min(backoffMaxMs, backoffBaseMs * 2 ** attempt * (0.5 + rng()));
        await sleep(err.retryAfterMs ?? backoff);
      }
    }
  }

  async function judgeUncached(input: JudgeInput, cacheKey: string): Promise<Judgment> {
    if (cache) {
      const hit = await cache.get(cacheKey);
      if (hit) {
        stats.cacheHits++;
        return hit;
      }
    }
    const completion = await requestWithRetries(input, cacheKey);
    const reading = readChoice(completion.content, { finishReason: completion.finishReason, refusal: completion.refusal });
    const judgment: Judgment = {
      score: reading.score,
      valid: reading.score !== null,
      ...(reading.score === null ? { invalidReason: reading.invalidReason } : {}),
      raw: completion.content,
      reason: reading.score !== null ? reasoningOf(completion.content) : `invalid (${reading.invalidReason}): ${reading.detail}`,
      ...(completion.usage ? { usage: completion.usage } : {}),
    };
    if (cache) await cache.set(cacheKey, { model: config.model, templateHash: template.hash }, judgment);
    return judgment;
  }

  return {
    kind: 'llm',
    describe() {
      return (
        `LLM judge: ${config.model} at ${config.baseUrl} grades helpfulness 1-6 on LIMA's rubric (${path.basename(template.path)}, sha256 ${template.hash.slice(0, 12)}), temperature 0. ` +
        'A reply counts only when it states exactly one choice 1-6; replies cut off by the token limit, refused, stating different choices, off the scale or stating none are invalid (counted by reason, left out of the means).'
      );
    },
    async judge(input) {
      const cacheKey = judgmentCacheKey({ model: config.model, templateHash: template.hash, prompt: input.prompt, response: input.response, reference: input.reference });
      let judgment: Judgment;
      const pending = inFlight.get(cacheKey);
      if (pending) {
        judgment = { ...(await pending), cached: true };
        stats.cacheHits++;
      } else {
        const promise = judgeUncached(input, cacheKey);
        inFlight.set(cacheKey, promise);
        try {
          judgment = await promise;
        } finally {
          inFlight.delete(cacheKey);
        }
      }
      if (!judgment.valid) stats.invalid++;
      return judgment;
    },
    stats: () => ({ ...stats }),
  };
}

function completionOf(json: unknown, url: string): Completion {
  const choices = (json as { choices?: unknown })?.choices;
  if (!Array.isArray(choices) || choices.length === 0) {
    throw new Error(`the response from ${url} has no choices[] (is it an OpenAI-compatible /chat/completions endpoint?)`);
  }
  const first = choices[0] as { message?: { content?: unknown; refusal?: unknown }; finish_reason?: unknown };
  const content = first?.message?.content;
  const usageRaw = (json as { usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } }).usage;
  let usage: Completion['usage'];
  if (usageRaw && typeof usageRaw === 'object') {
    usage = {};
    if (typeof usageRaw.prompt_tokens === 'number') usage.promptTokens = usageRaw.prompt_tokens;
    if (typeof usageRaw.completion_tokens === 'number') usage.completionTokens = usageRaw.completion_tokens;
  }
  // A null content (e.g. a refusal) is a reply without a choice: an invalid judgment, not an error.
  return {
    content: typeof content === 'string' ? content : '',
    finishReason: typeof first?.finish_reason === 'string' ? first.finish_reason : null,
    refusal: typeof first?.message?.refusal === 'string' ? first.message.refusal : null,
    usage,
  };
}

/** The server's error message from an error body ({"error":{"message"}} or {"error":"..."}), else the text. */
function errorMessageOf(text: string): string {
  try {
    const json = JSON.parse(text) as { error?: unknown; message?: unknown };
    const error = json?.error;
    if (typeof error === 'string') return error;
    if (error && typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string') return (error as { message: string }).message;
    if (typeof json?.message === 'string') return json.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  const trimmed = text.trim();
  if (!trimmed) return '(empty body)';
  return truncate(trimmed, 300);
}

/** Retry-After as delay-seconds or an HTTP date, in ms (capped); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, maxMs: number): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    const date = Date.parse(trimmed);
    if (Number.isNaN(date)) return undefined;
    ms = date - Date.now();
  }
  return Math.min(maxMs, Math.max(0, ms));
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return (err as Error)?.message ?? String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
