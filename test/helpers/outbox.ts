import { spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { PendingItem, PendingWrite } from '../../src/sync/outbox/outbox.js';

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

/**
 * What a crash right now would leave of the outbox at `path`: its file and log copied aside (the
 * outbox holds them exclusively) and opened as a restarted process would; the rows counted.
 */
let crashCopies = 0;
export function rowsAfterCrash(path: string): { values: number; items: number } {
  const copy = `${path}.crash-${++crashCopies}`;
  copyFileSync(path, copy);
  copyFileSync(`${path}-wal`, `${copy}-wal`);
  const db = new Database(copy, { readonly: true });
  try {
    return {
      values: db.prepare('SELECT count(*) FROM pending').pluck().get() as number,
      items: db.prepare('SELECT count(*) FROM pending_items').pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

/**
 * Writes the outbox of the first release at `path`, as it wrote it: schema 1, no application id,
 * three tables, two pending rows ('a' at 50, a delete of 'b' at 51) and, if asked, a dead letter.
 */
export function firstReleaseOutbox(path: string, { deadLetter = false } = {}): void {
  const raw = new Database(path);
  raw.exec(`
    CREATE TABLE pending (
      key TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, json TEXT, expires_at INTEGER,
      queued_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (name, value) VALUES ('highest_version', 40);
    CREATE TABLE dead_letters (
      id INTEGER PRIMARY KEY, key TEXT NOT NULL, version INTEGER NOT NULL, json TEXT, expires_at INTEGER,
      error TEXT NOT NULL, failed_at INTEGER NOT NULL
    );
    INSERT INTO pending VALUES ('a', 50, '{"n":1}', NULL, 7), ('b', 51, NULL, NULL, 8);
    PRAGMA user_version = 1;
  `);
  if (deadLetter) {
    raw.exec(`INSERT INTO dead_letters (key, version, json, expires_at, error, failed_at)
      VALUES ('p', 30, '"poison"', NULL, 'check failed', 9)`);
  }
  raw.close();
}

/**
 * A 4 MiB filesystem in `dir`: a real tmpfs where this process may mount one (root), otherwise a
 * directory with the outbox capped at 4 MiB, which fails the same way.
 */
export function smallDisk(dir: string): {
  path: string;
  maxFileBytes: number | undefined;
  release: () => void;
} {
  const mountPoint = join(dir, 'small-disk');
  mkdirSync(mountPoint);
  const mounted =
    process.getuid?.() === 0 &&
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mountPoint]).status === 0;
  return {
    path: join(mountPoint, 'outbox.db'),
    maxFileBytes: mounted ? undefined : 4 * 2 ** 20,
    release: () => {
      if (mounted) spawnSync('umount', ['--lazy', mountPoint]);
    },
  };
}
