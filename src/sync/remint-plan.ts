import { isAppend, type VersionedWrite } from '../storage/types.js';
import type { Remint } from './outbox/outbox.js';

/** The new versions reserved for writes accepted before the clock was anchored (see `ClockAnchor`). */
export interface ReservedVersions {
  needsRemint(version: number): boolean;
  remintedVersion(from: number): number;
  remapEnd(endsLogAt: number): number;
}

/**
 * The changes to make to `writes` before they are sent: each write (value or appended item)
 * accepted before the anchor takes its reserved version, and a value that ends its key's older
 * items (`endsLogAt`, set over a delete or an expiry) has that end moved into the new versions, so
 * it still ends exactly the items it did.
 */
export function planRemints(writes: readonly VersionedWrite[], versions: ReservedVersions): Remint[] {
  const changes: Remint[] = [];
  for (const write of writes) {
    if (isAppend(write)) {
      for (const item of write.items) {
        if (!versions.needsRemint(item.version)) continue;
        const to = versions.remintedVersion(item.version);
        changes.push({ key: write.key, from: item.version, to, itemId: item.id });
      }
      continue;
    }
    const remint = versions.needsRemint(write.version);
    const ends = write.endsLogAt ? versions.remapEnd(write.endsLogAt) : undefined;
    const endMoved = ends !== undefined && ends !== write.endsLogAt;
    if (!remint && !endMoved) continue;
    changes.push({
      key: write.key,
      from: write.version,
      to: remint ? versions.remintedVersion(write.version) : write.version,
      ...(endMoved ? { endsLogAt: ends } : {}),
    });
  }
  return changes;
}

/** Gives the writes about to be sent the versions `changes` assigned (items are changed in place). */
export function applyRemints(writes: VersionedWrite[], changes: readonly Remint[]): void {
  const values = new Map<string, Remint>();
  const items = new Map<string, Remint>();
  for (const change of changes) {
    if (change.itemId === undefined) values.set(change.key, change);
    else items.set(change.itemId, change);
  }
  for (const write of writes) {
    if (isAppend(write)) {
      for (const item of write.items) {
        const change = items.get(item.id);
        if (change) item.version = change.to;
      }
      write.version = write.items.reduce((newest, item) => Math.max(newest, item.version), 0);
      continue;
    }
    const change = values.get(write.key);
    if (!change || change.from !== write.version) continue;
    write.version = change.to;
    if (change.endsLogAt !== undefined) write.endsLogAt = change.endsLogAt;
  }
}
