/**
 * The log floor: the version at or below which a key's appended items have ended. A delete ends
 * the items older than it, and a value written over a delete or an expiry starts a new log; the
 * floor remembers that, so an item minted before it is removed and, arriving late, refused. These
 * are the rules every tier and adapter follows (the SQL functions in supabase/migrations mirror them).
 */

/** No item of the key has ended. */
export const NO_LOG_FLOOR = 0;

/** What a value (or tombstone) being replaced needs to say for the rules below. */
export interface ReplacedValue {
  /** The replaced value is a tombstone. */
  deleted: boolean;
  /** Absolute expiry in epoch ms, or null. */
  expiresAt: number | null;
}

/** A value that was deleted or had expired by `now` no longer has a log: a value written over it starts a new one. */
export function hasEnded(replaced: ReplacedValue, now: number): boolean {
  return replaced.deleted || (replaced.expiresAt !== null && replaced.expiresAt <= now);
}

/**
 * `hasEnded` for a value as a store holds it (`json` null for a tombstone), judged for a value write
 * at the time it was made (`ValueWrite.writtenAt`), never at the time it reaches the store: memory
 * judged the same write then, so a value whose TTL lapses while the write waits in the outbox ends
 * the log in the store exactly when it did in memory, whenever the flush happens. A write that does
 * not say is judged at `now`.
 */
export function storedHasEnded(
  stored: { json: string | null; expiresAt: number | null },
  write: { writtenAt?: number | undefined },
  now: number,
): boolean {
  return hasEnded({ deleted: stored.json === null, expiresAt: stored.expiresAt }, write.writtenAt ?? now);
}

/**
 * The floor a new value (not a tombstone) at `version` carries in memory: just below itself when
 * it replaces a value whose log has ended (the new log starts empty), otherwise the floor of the
 * value it replaced (a value replaces a value, not the log, so a later value coalesced over the
 * one that started the log carries where it started).
 */
export function valueLogFloor(version: number, replacedEnded: boolean, carried = NO_LOG_FLOOR): number {
  return replacedEnded ? Math.max(carried, version - 1) : carried;
}

/** The stored value a write replaces, as `appliedLogFloor` needs it. */
export interface StoredPredecessor {
  version: number;
  /** Its log had ended when the write was made (`storedHasEnded`). */
  ended: boolean;
}

/**
 * The floor a store takes from a write it applies, before raising its own to it: a tombstone ends
 * every older item; a value ends those at or below its `logFloor`. Written over a tombstone or an
 * expired value the store holds, it also ends that value's log: the new log started with the
 * first write this one coalesced (`firstVersion`), or where its carried floor says it started, or
 * else with itself; items from there on stay. Never below the ended value itself.
 */
export function appliedLogFloor(
  write: {
    version: number;
    json: string | null;
    logFloor?: number | undefined;
    firstVersion?: number | undefined;
  },
  replaced: StoredPredecessor | undefined,
): number {
  if (write.json === null) return write.version;
  const carried = write.logFloor ?? NO_LOG_FLOOR;
  if (!replaced?.ended) return carried;
  const start = write.firstVersion ?? (carried > NO_LOG_FLOOR ? carried + 1 : write.version);
  return Math.max(carried, start - 1, replaced.version);
}

/** An item survives the floor only if it is newer than it. */
export function isAboveFloor(item: { version: number }, floor: number): boolean {
  return item.version > floor;
}

/** The items of `items` newer than `floor` (the same array when none has ended). */
export function itemsAboveFloor<T extends { version: number }>(items: T[], floor: number): T[] {
  if (floor <= NO_LOG_FLOOR || items.every((item) => isAboveFloor(item, floor))) return items;
  return items.filter((item) => isAboveFloor(item, floor));
}

/**
 * Why a write's `logFloor` (a safe integer, >= 0, below the write's version) or `firstVersion` (a
 * positive safe integer, at most the write's version) breaks the contract, or undefined.
 */
export function logFloorProblem(write: {
  version: number;
  logFloor?: number | undefined;
  firstVersion?: number | undefined;
}): string | undefined {
  const { logFloor, firstVersion } = write;
  if (
    firstVersion !== undefined &&
    (!Number.isSafeInteger(firstVersion) || firstVersion < 1 || firstVersion > write.version)
  )
    return 'invalid firstVersion';
  if (logFloor === undefined) return undefined;
  if (!Number.isSafeInteger(logFloor) || logFloor < 0 || logFloor >= write.version) return 'invalid logFloor';
  return undefined;
}
