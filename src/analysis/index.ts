// Public API of the analysis stage.
export type { AnalysisInput, DrilldownExample, Metrics, EpochMetrics, BaseMetrics, BaseChange, CorrelationFigure, Alternative, Num, ReplicateCount, UndefinedReason } from './types.ts';
export { DEFAULT_ALPHA, DEFAULT_CONFIDENCE, DEFAULT_MAX_UNDEFINED_SHARE } from './types.ts';
export { analyze, baseSentence, BASE_EPOCH, correlationSentence, undefinedReplicatesText, AnalysisInputError, type SentenceFigure } from './analyze.ts';
export { pearson, spearman, kendallTauB, averageRanks, permutationPValue, bootstrapMeanInterval, percentileInterval, replicateSummary, isConstant, quantile } from './stats.ts';
export { selectInWindow, selectMinPerplexity, selectLast, selectBestOverall } from './select.ts';
export { epochTable, tableRows } from './tables.ts';
