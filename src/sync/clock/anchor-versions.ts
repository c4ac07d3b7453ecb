import type { LogItem } from '../../storage/contract/types.js';
import type { VersionChange } from '../outbox/outbox.js';

/** A pending value write as the anchoring step sees it. */
export interface PendingValueVersion {
  key: string;
  version: number;
  /** The key's older items end at or below this version (0: the write ends none). */
  logFloor: number;
}

/** A pending appended item as the anchoring step sees it. */
export interface PendingItemVersion {
  key: string;
  item: LogItem;
}

/**
 * The new versions for the writes minted before the clock was anchored, given the store's mark:
 * none when every one of them is already above it (the common restart: they keep their versions);
 * otherwise all of them, in the order of their old versions, each from `mint` (which never goes
 * below the mark). A value's log floor moves with the write that set it, so it still ends exactly
 * the items it did.
 */
export function planAnchorVersions(
  values: Iterable<PendingValueVersion>,
  items: Iterable<PendingItemVersion>,
  isUnanchored: (version: number) => boolean,
  mark: number,
  mint: () => number,
): VersionChange[] {
  const valueList = [...values];
  const itemList = [...items];
  const points = new Set<number>();
  for (const { version, logFloor } of valueList) {
    if (isUnanchored(version)) points.add(version);
    if (logFloor > 0 && isUnanchored(logFloor + 1)) points.add(logFloor + 1);
  }
  for (const { item } of itemList) if (isUnanchored(item.version)) points.add(item.version);
  const ordered = [...points].sort((a, b) => a - b);
  if (ordered.length === 0 || (ordered[0] as number) > mark) return [];
  const to = new Map<number, number>();
  for (const version of ordered) to.set(version, mint());

  const changes: VersionChange[] = [];
  for (const { key, version, logFloor } of valueList) {
    const newVersion = to.get(version);
    const floorWrite = logFloor > 0 ? to.get(logFloor + 1) : undefined;
    if (newVersion === undefined && floorWrite === undefined) continue;
    changes.push({
      key,
      from: version,
      to: newVersion ?? version,
      ...(floorWrite !== undefined ? { logFloor: floorWrite - 1 } : {}),
    });
  }
  for (const { key, item } of itemList) {
    const newVersion = to.get(item.version);
    if (newVersion !== undefined) changes.push({ key, from: item.version, to: newVersion, itemId: item.id });
  }
  return changes;
}
