// Quality judges: the offline rubric (default) and an OpenAI-compatible LLM judge.
import type { JudgeConfig } from './config.ts';
import type { Judge } from './types.ts';
import { createRubricJudge } from './rubric.ts';
import { createLlmJudge, type LlmJudgeOptions } from './llm.ts';

export type { Judge, JudgeInput, Judgment, JudgeStats, InvalidReason } from './types.ts';
export { defaultJudgeConfig, validateJudgeConfig, judgeConcurrency, LLM_DEFAULTS, type JudgeConfig, type LlmJudgeConfig, type RubricJudgeConfig } from './config.ts';
export { judgeAll, type JudgeAllOptions } from './judge-all.ts';
export { RUBRIC_FORMULA, RUBRIC_WEIGHTS, rubricJudgment, createRubricJudge, rougeLF1, degenerationScore, structureOf } from './rubric.ts';
export { createLlmJudge, parseRetryAfter, type LlmJudgeOptions } from './llm.ts';
export { parseChoice, readChoice, choiceStatements, reasoningOf, INVALID_REASONS, type ChoiceReading, type ChoiceStatement, type ReplyMeta } from './parse.ts';
export { loadTemplate, renderTemplate, DEFAULT_TEMPLATE_PATH, type JudgeTemplate } from './template.ts';
export { JudgmentCache, judgmentCacheKey, CACHE_VERSION } from './cache.ts';

/** The judge a config describes. The rubric ignores the options (it needs no cache). */
export function createJudge(config: JudgeConfig, opts: LlmJudgeOptions = {}): Judge {
  return config.kind === 'rubric' ? createRubricJudge() : createLlmJudge(config, opts);
}
