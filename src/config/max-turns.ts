import { DEFAULT_MAX_TURNS } from '../conversation/option-defaults.js';

/**
 * `MAX_CONVERSATION_TURNS`, parsed as the original daemon did: a positive integer; anything else
 * (missing, invalid, <= 0) gives the default of 50.
 */
export function resolveMaxTurns(raw: string | undefined): number {
  if (raw === undefined || !/^\s*\+?\d+\s*$/.test(raw)) return DEFAULT_MAX_TURNS;
  const turns = Number.parseInt(raw, 10);
  return turns > 0 && Number.isSafeInteger(turns) ? turns : DEFAULT_MAX_TURNS;
}
