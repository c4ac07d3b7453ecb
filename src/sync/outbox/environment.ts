import { fdatasync, statfsSync } from 'node:fs';
import { type OutboxFileSizes, OutboxFiles } from './outbox-files.js';

/** The outbox file and its log, held open to notice them being deleted or replaced, and to measure them. */
export interface WatchedFiles {
  /** A descriptor of the log, to sync it on the thread pool before a checkpoint. */
  readonly walFd: number;
  /** Sizes of both files; throws `OutboxError` when either has been deleted or renamed over. */
  check(): OutboxFileSizes;
  /** The main file only: throws `OutboxError` when it has been deleted or renamed over. */
  checkMain(): void;
  /** As `check`, and also notices a file renamed away with another put at its path. */
  checkPaths(): OutboxFileSizes;
  close(): void;
}

/**
 * What the outbox reads from the machine around it: free disk space, its files' sizes, the time and
 * its maintenance timer (and the log sync before a background checkpoint, so tests can see it asked). Injected so that full-disk and maintenance behaviour is testable without a
 * small filesystem (root) and without waiting for timers.
 */
export interface OutboxEnvironment {
  /** Bytes an unprivileged writer may still use on the filesystem holding `directory`; undefined if unknown. */
  freeBytes(directory: string): number | undefined;
  /** Starts watching `path` and `path-wal` (both exist once the outbox is open). */
  watchFiles(path: string): WatchedFiles;
  /** Syncs the log's data on the thread pool, then calls `done` (even when the sync failed). */
  syncLog(walFd: number, done: () => void): void;
  /** Milliseconds since the epoch, for the times recorded in rows. */
  now(): number;
  /** Runs `tick` every `intervalMs` without keeping the process alive; returns what stops it. */
  every(intervalMs: number, tick: () => void): () => void;
}

// Bound at load so that fake timers in tests cannot stall the outbox.
const repeat = globalThis.setInterval.bind(globalThis);
const stopRepeating = globalThis.clearInterval.bind(globalThis);

/** The real machine: statfs, fstat on held descriptors, fdatasync, Date.now and an unref'd interval. */
export const systemEnvironment: OutboxEnvironment = {
  freeBytes(directory) {
    try {
      const fs = statfsSync(directory);
      return fs.bavail * fs.bsize;
    } catch {
      return undefined;
    }
  },
  watchFiles: (path) => OutboxFiles.watch(path),
  syncLog: (walFd, done) => fdatasync(walFd, () => done()),
  now: () => Date.now(),
  every(intervalMs, tick) {
    const timer = repeat(tick, intervalMs);
    timer.unref();
    return () => stopRepeating(timer);
  },
};
