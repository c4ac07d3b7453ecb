import { isAppend, type VersionedWrite } from '../storage/types.js';
import type { Remint } from './outbox.js';

/**
 * New versions for the writes of every key that has one minted before the clock was anchored.
 *
 * All of that key's pending writes (its value and each appended item) are re-minted together, in
 * the order of their old versions: the order of a key's items, and where a value stands among them,
 * is the order they were written in, and it must survive. A value that ends the key's older items
 * (`endsLogAt`, set over a delete or an expiry) keeps ending exactly the same ones: its end moves to
 * just below the new version of the first write that came after it.
 */
export function planRemints(
  writes: readonly VersionedWrite[],
  needsRemint: (version: number) => boolean,
  next: () => number,
): Remint[] {
  const byKey = new Map<string, VersionedWrite[]>();
  for (const write of writes) {
    const list = byKey.get(write.key);
    if (list) list.push(write);
    else byKey.set(write.key, [write]);
  }
  const changes: Remint[] = [];
  for (const [key, keyWrites] of byKey) {
    const olds: Array<{ from: number; itemId?: string }> = [];
    for (const write of keyWrites) {
      if (isAppend(write)) for (const item of write.items) olds.push({ from: item.version, itemId: item.id });
      else olds.push({ from: write.version });
    }
    if (!olds.some((old) => needsRemint(old.from))) continue;
    olds.sort((a, b) => a.from - b.from);
    const minted: Remint[] = olds.map((old) => ({ key, ...old, to: next() }));
    for (const write of keyWrites) {
      if (isAppend(write) || !write.endsLogAt) continue;
      const ends = write.endsLogAt;
      const firstAfter = minted.find((change) => change.from > ends);
      const value = minted.find((change) => change.itemId === undefined);
      if (firstAfter && value) value.endsLogAt = firstAfter.to - 1;
    }
    changes.push(...minted);
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
