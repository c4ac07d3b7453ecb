/** Environment settings of the conversation domain, parsed as the original daemon did. */

export const DEFAULT_MAX_TURNS = 50;
export const DEFAULT_TIMEOUT_HOURS = 24;
export const HOUR_MS = 3_600_000;

/** `MAX_CONVERSATION_TURNS`: a positive integer; anything else (missing, invalid, <= 0) gives 50. */
export function resolveMaxTurns(raw: string | undefined): number {
  if (raw === undefined || !/^\s*\+?\d+\s*$/.test(raw)) return DEFAULT_MAX_TURNS;
  const turns = Number.parseInt(raw, 10);
  return turns > 0 && Number.isSafeInteger(turns) ? turns : DEFAULT_MAX_TURNS;
}

/**
 * `CONVERSATION_TIMEOUT_HOURS`: a positive number of hours (fractions allowed, e.g. `0.5`);
 * anything else (missing, invalid, <= 0) gives 24.
 */
export function resolveTimeoutHours(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_TIMEOUT_HOURS;
  const hours = Number(raw);
  return Number.isFinite(hours) && hours > 0 ? hours : DEFAULT_TIMEOUT_HOURS;
}
