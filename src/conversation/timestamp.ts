/**
 * The timestamp format of the original daemon, `datetime.now(timezone.utc).isoformat()`:
 * `2025-10-13T07:03:00.123000+00:00`. JavaScript clocks have millisecond resolution, so the last
 * three of the six fractional digits are always zero. Python omits the fraction when it is zero;
 * we always write it (Python's `datetime.fromisoformat` reads both).
 */
export function pythonUtcTimestamp(date: Date = new Date()): string {
  return `${date.toISOString().slice(0, 23)}000+00:00`;
}
