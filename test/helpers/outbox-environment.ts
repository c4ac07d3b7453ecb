import {
  type OutboxEnvironment,
  systemEnvironment,
  type WatchedFiles,
} from '../../src/sync/outbox/environment.js';
import type { OutboxFileSizes } from '../../src/sync/outbox/outbox-files.js';

/**
 * An outbox environment the test drives: it sets the free space and (if it likes) the log's size
 * the outbox sees, runs the maintenance tick by calling `tick()`, and counts what the outbox asked
 * for: free-space measurements and log syncs before background checkpoints (each completed on the
 * next turn of the event loop). The files themselves are real.
 */
export class TestEnvironment implements OutboxEnvironment {
  /** Free bytes the outbox sees; undefined: cannot be measured. */
  free: number | undefined = 64 * 2 ** 30;
  /** When set, the size the outbox sees for its log instead of the real one. */
  walBytes: number | undefined;
  time = 1_000;
  measurements = 0;
  syncs = 0;
  ticks = 0;
  readonly #ticks = new Set<() => void>();

  freeBytes(): number | undefined {
    this.measurements++;
    return this.free;
  }

  watchFiles(path: string): WatchedFiles {
    const files = systemEnvironment.watchFiles(path);
    const seen = (sizes: OutboxFileSizes) =>
      this.walBytes === undefined ? sizes : { ...sizes, walBytes: this.walBytes };
    return {
      walFd: files.walFd,
      check: () => seen(files.check()),
      checkMain: () => files.checkMain(),
      checkPaths: () => seen(files.checkPaths()),
      close: () => files.close(),
    };
  }

  syncLog(_walFd: number, done: () => void): void {
    this.syncs++;
    setImmediate(done);
  }

  now(): number {
    return this.time;
  }

  /** The interval of every repeating task asked for, in order. */
  readonly intervals: number[] = [];

  every(intervalMs: number, tick: () => void): () => void {
    this.intervals.push(intervalMs);
    this.#ticks.add(tick);
    return () => this.#ticks.delete(tick);
  }

  /** Repeating tasks asked for and not stopped. */
  get repeating(): number {
    return this.#ticks.size;
  }

  /** Runs the maintenance tick of every open outbox once. */
  tick(): void {
    this.ticks++;
    for (const tick of [...this.#ticks]) tick();
  }
}

/**
 * The real machine (statfs, fstat, fdatasync, an interval timer), counting what the outbox did with
 * it: maintenance ticks run and log syncs asked for before background checkpoints.
 */
export function countingEnvironment(): {
  environment: OutboxEnvironment;
  ticks: () => number;
  syncs: () => number;
} {
  let ticks = 0;
  let syncs = 0;
  const environment: OutboxEnvironment = {
    ...systemEnvironment,
    every: (intervalMs, tick) =>
      systemEnvironment.every(intervalMs, () => {
        ticks++;
        tick();
      }),
    syncLog: (walFd, done) => {
      syncs++;
      systemEnvironment.syncLog(walFd, done);
    },
  };
  return { environment, ticks: () => ticks, syncs: () => syncs };
}
