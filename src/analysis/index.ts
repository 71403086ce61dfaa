// Public API of the analysis stage.
export type { AnalysisInput, DrilldownExample, Metrics, EpochMetrics, CorrelationFigure, Alternative, Num } from './types.ts';
export { analyze, correlationSentence, AnalysisInputError } from './analyze.ts';
export { pearson, spearman, kendallTauB, averageRanks, permutationPValue, bootstrapMeanInterval, percentileInterval, quantile } from './stats.ts';
export { selectInWindow, selectMinPerplexity, selectLast, selectBestOverall } from './select.ts';
export { epochTable, tableRows } from './tables.ts';
