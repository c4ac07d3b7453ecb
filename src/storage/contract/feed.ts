import { DEFAULT_FEED_PAGE_LIMIT, type FeedPage, type FeedReadOptions } from './types.js';

/**
 * How long an adapter keeps its change feed unless configured otherwise: 1 hour. Followers poll
 * every few hundred milliseconds, so only a follower that stopped (a paused process, a network
 * partition) ever falls behind by more than a second; an hour lets one that was away that long
 * catch up change by change instead of dropping its whole cache. A longer outage answers
 * `reset`, which is correct, only more expensive.
 */
export const DEFAULT_FEED_RETENTION_MS = 3_600_000;

/**
 * A position in a store's change log: the id of the last change seen (ids increase in commit
 * order, 0 before the first) and that change's version, 0 for none. The version lets a store tell
 * a cursor of its own history from one of a restored copy that has since reused the id for
 * another write (see `cursorIsServable`).
 */
export interface FeedPosition {
  id: number;
  version: number;
}

/**
 * The cursor handed to followers: `<epoch>:<change id>:<version of that change>`. It carries the
 * epoch so that a cursor is never read against another store's ids (a replaced or recreated
 * file starts its ids at 1 again).
 */
export function formatCursor(epoch: string, position: FeedPosition): string {
  return `${epoch}:${position.id}:${position.version}`;
}

/** The position a cursor names in this epoch; `undefined` for another epoch's cursor or garbage. */
export function parseCursor(cursor: string, epoch: string): FeedPosition | undefined {
  if (typeof cursor !== 'string') return undefined;
  // Read from the right, so an epoch holding ':' parses too.
  const match = /^(.*):(0|[1-9]\d{0,15}):(0|[1-9]\d{0,15})$/s.exec(cursor);
  if (!match || match[1] !== epoch) return undefined;
  const [id, version] = [Number(match[2]), Number(match[3])];
  if (!Number.isSafeInteger(id) || !Number.isSafeInteger(version)) return undefined;
  return { id, version };
}

/** What a store knows about its log when a follower asks. */
export interface FeedBounds {
  /** The newest change, `{ id: 0, version: 0 }` before the first. Pruning always keeps it. */
  head: FeedPosition;
  /**
   * Changes with ids at or below this were pruned by retention; 0 when none were. A cursor at it
   * is still served (every change after it is held), one below it is not.
   */
  prunedThrough: number;
  /** The version of a change still held, `undefined` once pruned (or never written). */
  versionOf(id: number): number | undefined;
}

/**
 * Whether every change after `position` is still in the log. Not when changes after it were
 * pruned. Not when it is ahead of the head: the file was restored from a backup that kept this
 * store's epoch but not its newest changes, and the follower saw changes the store has lost (and
 * whose ids it will reuse). Not when the change at its id has another version: a restored store
 * that has since written past the cursor, whose id now names a different write.
 */
export function cursorIsServable(position: FeedPosition, bounds: FeedBounds): boolean {
  if (position.id < bounds.prunedThrough || position.id > bounds.head.id) return false;
  if (position.id === bounds.head.id) return position.version === bounds.head.version;
  const version = position.id === 0 ? 0 : bounds.versionOf(position.id);
  return version === undefined || version === position.version;
}

/** The page size asked for, checked: a positive integer, `DEFAULT_FEED_PAGE_LIMIT` if not given. */
export function feedPageLimit(opts: FeedReadOptions | undefined): number {
  const limit = opts?.limit ?? DEFAULT_FEED_PAGE_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }
  return limit;
}

/** The answer to `after: null`, or to a cursor that cannot be served (`reset`). */
export function headPage(epoch: string, head: FeedPosition, reset: boolean): FeedPage {
  return { epoch, cursor: formatCursor(epoch, head), changes: [], reset, more: false };
}
