import { versionTimeMs } from '../storage/contract/version.js';
import type { OutboxRows, PendingItem, PendingWrite } from '../sync/outbox/outbox.js';
import { entryJson } from './entry.js';
import type { MemoryTier } from './memory-tier.js';

/**
 * The outbox rows of every write memory holds unflushed, as a recovery in reverse: when the outbox
 * file is lost, memory is the only place they still are. Each value keeps its version, expiry and
 * log floor, each item its version and id, and both their `unanchored` flag, so a restart over the
 * new file replays exactly what this process would have sent. `appended` are the writes the lost
 * file refused on their way in.
 */
export function outboxRowsFromMemory(
  tier: MemoryTier,
  isUnanchored: (version: number) => boolean,
  appended: Array<PendingWrite | PendingItem>,
  highestVersion: number,
): OutboxRows {
  const now = Date.now();
  const values: PendingWrite[] = [];
  for (const [key, entry] of tier.dirty) {
    values.push({
      key,
      version: entry.version,
      json: entryJson(entry),
      expiresAt: entry.expiresAt,
      queuedAt: entry.since,
      ...(entry.logFloor > 0 ? { logFloor: entry.logFloor } : {}),
      ...(entry.firstVersion < entry.version ? { firstVersion: entry.firstVersion } : {}),
      ...(isUnanchored(entry.version) ? { unanchored: true } : {}),
    });
  }
  const items: PendingItem[] = [];
  for (const [key, log] of tier.pendingLogs) {
    for (const item of log.items) {
      const append = tier.appendOf(item);
      items.push({
        key,
        item: { id: item.id, version: item.version, json: item.json },
        // The expiry it asked for and when it was appended: a replay judges the key's expiry then.
        expiresAt: append ? append.expiresAt : null,
        queuedAt: append ? append.at : Math.min(now, Math.max(log.since, versionTimeMs(item.version))),
        ...(isUnanchored(item.version) ? { unanchored: true } : {}),
      });
    }
  }
  return { values, items, appended, highestVersion };
}
