/**
 * Whether `value` nests objects or arrays more than `limit` levels deep; a bare object or array is
 * one level. Stops descending past the limit, so its own recursion is bounded by it.
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (limit <= 0) return true;
  for (const child of Object.values(value)) {
    if (nestsDeeperThan(child, limit - 1)) return true;
  }
  return false;
}
