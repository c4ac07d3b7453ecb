/**
 * Versions are hybrid-logical-clock readings packed into one safe integer:
 * `epochMs * LOGICAL_SLOTS + counter`. They stay below 2^53 until the year 2248, so they travel
 * through JSON and PostgreSQL `bigint` unchanged.
 */
export const LOGICAL_SLOTS = 1024;

/** Wall-clock milliseconds a version was minted at (approximately, if the clock ran ahead). */
export function versionTimeMs(version: number): number {
  return Math.floor(version / LOGICAL_SLOTS);
}
