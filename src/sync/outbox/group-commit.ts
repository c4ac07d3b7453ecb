import type Database from 'better-sqlite3';
import type { Durability } from '../types.js';
import type { PendingItem, PendingWrite } from './outbox.js';
import type { WalLimits } from './wal-limits.js';

/**
 * Group commit waits for the next turn of the event loop, not a microtask: in a server, concurrent
 * writers arrive in separate I/O callbacks, and only a macrotask boundary lets all of them join one
 * transaction. Bound at load so that fake timers in tests cannot stall the outbox.
 */
const scheduleCommit: (commit: () => void) => void = globalThis.setImmediate.bind(globalThis);

type Write = PendingWrite | PendingItem;
interface Waiting {
  write: Write;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Folds the appends made in one turn of the event loop into one transaction. `commit` records a
 * group and returns why it must not be acknowledged, if it must not; each caller resolves or rejects
 * with the group.
 */
export class GroupCommit {
  readonly #commit: (writes: Write[]) => Error | undefined;
  #group: Waiting[] = [];

  constructor(commit: (writes: Write[]) => Error | undefined) {
    this.#commit = commit;
  }

  /** Appends waiting for the next commit. */
  get queued(): number {
    return this.#group.length;
  }

  add(write: Write): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#group.length === 0) scheduleCommit(() => this.commitQueued());
      this.#group.push({ write, resolve, reject });
    });
  }

  /** Commits what is queued now (also run at close, before the next turn). */
  commitQueued(): void {
    const group = this.#group;
    if (group.length === 0) return;
    this.#group = [];
    const failure = this.#commit(group.map((g) => g.write));
    if (failure) {
      for (const g of group) g.reject(failure);
      return;
    }
    for (const g of group) g.resolve();
  }
}

/**
 * WAL appends each commit to the log with write(2) before the transaction returns, so a commit
 * survives the death of the process at any `synchronous` level. NORMAL syncs only at checkpoints
 * (power loss may drop the newest commits but never corrupts the file); FULL also fsyncs the log on
 * every commit, which is what surviving power loss requires. Checkpoints (two fsyncs each) run in
 * the background, never inside a commit.
 */
export function configureCommits(
  db: Database.Database,
  durability: Exclude<Durability, 'none'>,
  limits: WalLimits,
): void {
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
  db.pragma('wal_autocheckpoint = 0');
  db.pragma(`journal_size_limit = ${limits.checkpointAtBytes}`);
  if (limits.maxPageCount !== undefined) db.pragma(`max_page_count = ${limits.maxPageCount}`);
  db.exec('BEGIN EXCLUSIVE; COMMIT;');
}
