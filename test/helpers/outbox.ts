import { closeSync, openSync, readdirSync, readlinkSync, statfsSync, writeSync } from 'node:fs';
import type { PendingItem, PendingWrite } from '../../src/sync/outbox.js';

/** A pending value row as the cache would append it, queued at its version. */
export const pendingValue = (
  key: string,
  version: number,
  json: string | null = JSON.stringify(version),
): PendingWrite => ({
  key,
  version,
  json,
  expiresAt: null,
  queuedAt: version,
});

/** A pending appended item as the cache would append it, queued at its version. */
export const pendingItem = (
  key: string,
  id: string,
  version: number,
  json = JSON.stringify(id),
): PendingItem => ({
  key,
  item: { id, version, json },
  expiresAt: null,
  queuedAt: version,
});

/** Lets the outbox run what it scheduled for the next `n` turns of the event loop. */
export async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Files this process holds open whose path starts with `prefix` (the outbox, its log, deleted or not). */
export function descriptorsOf(prefix: string): string[] {
  const targets: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(prefix)) targets.push(target);
    } catch {
      // Closed between listing and reading: not held.
    }
  }
  return targets;
}

/** Bytes an unprivileged writer may still use on the filesystem holding `directory`. */
export function freeBytesAt(directory: string): number {
  const fs = statfsSync(directory);
  return fs.bavail * fs.bsize;
}

/** Appends to `path` until its filesystem has no room left. */
export function fillDisk(path: string): void {
  const fd = openSync(path, 'a');
  const block = Buffer.alloc(4_096, 1);
  try {
    for (;;) writeSync(fd, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}
