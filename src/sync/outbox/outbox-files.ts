import { closeSync, fstatSync, openSync } from 'node:fs';
import { type FileIdentity, identify, isSameFile } from '../../storage/sqlite-file/file-identity.js';
import { OutboxError } from '../errors.js';

export interface OutboxFileSizes {
  mainBytes: number;
  walBytes: number;
}

/**
 * Watches the outbox file and its write-ahead log for being deleted or replaced while open. An
 * unlinked file keeps accepting writes through the open handle, and they vanish with the process.
 *
 * After each commit (once per transaction, not per write: concurrent writes share one), `check`
 * looks at read-only handles of its own: a file deleted, or replaced by renaming another over it,
 * has no link left. A file renamed away with a new one put at its path keeps its link, so
 * `checkPaths`, run in the background, also compares the files at the paths with the ones opened.
 *
 * The handles must be closed only after SQLite's connection is: closing any descriptor of a file
 * drops the process's POSIX locks on it, including SQLite's exclusive lock.
 */
export class OutboxFiles {
  readonly #main: FileIdentity;
  readonly #wal: FileIdentity;
  readonly #mainFd: number;
  /** Also used to fsync the log on the thread pool before a checkpoint. */
  readonly walFd: number;

  private constructor(main: FileIdentity, wal: FileIdentity, mainFd: number, walFd: number) {
    this.#main = main;
    this.#wal = wal;
    this.#mainFd = mainFd;
    this.walFd = walFd;
  }

  /** Records `path` and `path-wal` as they are now (both exist once the outbox is open). */
  static watch(path: string): OutboxFiles {
    const main = identify(path);
    const wal = identify(`${path}-wal`);
    if (!main || !wal) throw new OutboxError(`the outbox at ${path} disappeared while it was being opened`);
    const mainFd = openSync(path, 'r');
    try {
      return new OutboxFiles(main, wal, mainFd, openSync(wal.path, 'r'));
    } catch (error) {
      closeSync(mainFd);
      throw error;
    }
  }

  /** Sizes of both files; throws `OutboxError` when either has been deleted or renamed over. */
  check(): OutboxFileSizes {
    const main = fstatSync(this.#mainFd);
    const wal = fstatSync(this.walFd);
    if (main.nlink === 0 || wal.nlink === 0) throw this.#replaced();
    return { mainBytes: main.size, walBytes: wal.size };
  }

  /** The main file only: throws `OutboxError` when it has been deleted or renamed over. */
  checkMain(): void {
    if (fstatSync(this.#mainFd).nlink === 0) throw this.#replaced();
  }

  /** As `check`, and also notices a file renamed away with another put at its path. */
  checkPaths(): OutboxFileSizes {
    if (
      !isSameFile(this.#main, identify(this.#main.path)) ||
      !isSameFile(this.#wal, identify(this.#wal.path))
    ) {
      throw this.#replaced();
    }
    return this.check();
  }

  /** Call after the SQLite connection is closed (see the class comment). */
  close(): void {
    closeSync(this.#mainFd);
    closeSync(this.walFd);
  }

  #replaced(): OutboxError {
    return new OutboxError(
      `the outbox at ${this.#main.path} (or its -wal file) was deleted or replaced while the cache was running; ` +
        'this file cannot keep new writes. The cache writes a new outbox at that path from memory; until it ' +
        'has, writes are refused, and writes accepted before keep flushing to the store from memory',
    );
  }
}
