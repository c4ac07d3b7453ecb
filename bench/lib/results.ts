import type { LatencySummary } from './stats.js';

export type CaseId = 'read-hit' | 'write' | 'read-miss' | 'flush' | 'conversation' | 'recovery' | 'memory';

/**
 * One measured figure. A figure has a latency distribution, a rate, or a plain value (or
 * several); `baseline` names the figure (by id) it is compared against in the report.
 */
export interface Figure {
  /** Stable id, `<case>.<name>`, used by baselines and targets. */
  id: string;
  case: CaseId;
  label: string;
  latencyNs?: LatencySummary;
  /** Operations per second (throughput figures). */
  opsPerSec?: number;
  value?: number;
  unit?: string;
  /** Id of the figure this one is compared against. */
  baseline?: string;
  /** What the comparison uses; default: p50 latency if present, else the rate, else the value. */
  compare?: 'latency' | 'rate' | 'value';
  /** Extra measured details (counts, sizes, settings). */
  details?: Record<string, number | string | boolean | null>;
  note?: string;
}

export interface CaseReport {
  id: CaseId;
  title: string;
  /** What the case measures and how, one paragraph. */
  method: string;
  figures: Figure[];
  notes: string[];
  skipped?: string;
  elapsedMs: number;
}

export interface TargetResult {
  target: string;
  measured: string;
  /** `null` when the figure could not be measured in this run. */
  met: boolean | null;
}
