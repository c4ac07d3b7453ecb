/**
 * Equal versions. Two processes can mint exactly the same version for one key (same millisecond,
 * same logical counter). The store keeps the first to arrive, like any write at or below the stored
 * version; the point is that the other process learns it lost. "Stale at my own version" also means
 * "an earlier attempt of mine committed but its answer was lost", so the answer says which:
 * `storedDiffers`. The process whose write arrived first holds what the store holds; only the
 * second can be wrong, and it is the one told, so both converge with no further read or message.
 * (Breaking ties by content instead would let a later arrival replace a write whose process had
 * already been told `applied` and would keep serving it: nothing would ever tell that one.)
 */
export function staleAnswer(
  write: { version: number; json: string | null },
  stored: { version: number; json: string | null },
): { status: 'stale'; storedVersion: number; storedDiffers?: boolean } {
  if (stored.version !== write.version) return { status: 'stale', storedVersion: stored.version };
  return { status: 'stale', storedVersion: stored.version, storedDiffers: stored.json !== write.json };
}
