import type { Logger } from 'pino';
import type { ClockAnchor } from '../sync/clock/clock-anchor.js';
import type { HybridLogicalClock } from '../sync/clock/hlc.js';
import type { Outbox } from '../sync/outbox/outbox.js';
import type { CacheEventHub } from './cache-events.js';
import { entryFromOutbox } from './entry.js';
import type { WritePipeline } from './write-pipeline.js';

export interface RecoveryParts {
  outbox: Outbox;
  pipeline: WritePipeline;
  clock: HybridLogicalClock;
  anchor: ClockAnchor;
  events: CacheEventHub;
  logger: Logger;
  /** Counts rows found damaged (they are dead-lettered). */
  onDamaged: (count: number) => void;
}

/**
 * Puts the writes an earlier process left in the outbox back in memory and schedules their flush;
 * returns how many keys had some. It only reads the outbox: a start on a full disk still replays.
 */
export function replayOutbox(parts: RecoveryParts): number {
  const { outbox, pipeline, clock, anchor } = parts;
  quarantineDamaged(parts);
  clock.observe(outbox.highestVersion());
  // An outbox of 0.1 may hold unanchored rows with new versions reserved for them: they take those.
  const reserved = new Map(outbox.reservedVersions());
  const keys = new Set<string>();
  for (const row of outbox.pending()) {
    let version = row.version;
    let logFloor = row.json === null ? 0 : (row.logFloor ?? 0);
    const reservedVersion = row.unanchored ? reserved.get(version) : undefined;
    const reservedFloorWrite = logFloor > 0 ? reserved.get(logFloor + 1) : undefined;
    if (reservedVersion !== undefined || reservedFloorWrite !== undefined) {
      const to = reservedVersion ?? version;
      const floor = reservedFloorWrite !== undefined ? reservedFloorWrite - 1 : logFloor;
      pipeline.reservedRow({
        key: row.key,
        from: version,
        to,
        ...(floor !== logFloor ? { logFloor: floor } : {}),
      });
      version = to;
      logFloor = floor;
    }
    if (!row.unanchored || reservedVersion !== undefined) anchor.replayedAnchored(version);
    clock.observe(version);
    const entry = entryFromOutbox(row.key, { ...row, version, logFloor });
    // Judged at the time the write was made, by the clock that made it, even if the wall clock has
    // stepped back since: memory judged the value it replaced then, and the store will too.
    pipeline.commitValue(row.key, entry, row.queuedAt);
    keys.add(row.key);
  }
  for (const row of outbox.pendingItems()) {
    const reservedVersion = row.unanchored ? reserved.get(row.item.version) : undefined;
    if (reservedVersion !== undefined) {
      pipeline.reservedRow({
        key: row.key,
        from: row.item.version,
        to: reservedVersion,
        itemId: row.item.id,
      });
      row.item.version = reservedVersion;
    }
    if (!row.unanchored || reservedVersion !== undefined) anchor.replayedAnchored(row.item.version);
    clock.observe(row.item.version);
    pipeline.commitItem(row.key, row.item, row.expiresAt, row.queuedAt);
    keys.add(row.key);
  }
  return keys.size;
}

function quarantineDamaged({ outbox, events, logger, onDamaged }: RecoveryParts): void {
  const damaged = outbox.quarantineDamaged();
  if (damaged.length === 0) return;
  onDamaged(damaged.length);
  for (const letter of damaged) {
    logger.warn(
      { key: letter.key, version: letter.version, error: letter.error },
      'damaged outbox row dead-lettered at replay',
    );
  }
  // Replay runs inside `createHybridCache`, before the caller can listen: announced on a later turn.
  setImmediate(() => {
    for (const letter of damaged) events.emit('deadLetter', letter);
  });
}
