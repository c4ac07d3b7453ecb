import { OutboxError } from '../cache/errors.js';
import { type FileIdentity, identify, isSameFile } from '../storage/file-identity.js';

export interface OutboxFileSizes {
  mainBytes: number;
  walBytes: number;
}

/**
 * Watches the outbox file and its write-ahead log for being deleted or replaced while open. An
 * unlinked file keeps accepting writes through the open handle, and they vanish with the process:
 * the outbox checks after each commit, before acknowledging it (two `stat` calls per transaction,
 * not per write, since concurrent writes share a transaction).
 */
export class OutboxFiles {
  readonly #main: FileIdentity;
  readonly #wal: FileIdentity;

  private constructor(main: FileIdentity, wal: FileIdentity) {
    this.#main = main;
    this.#wal = wal;
  }

  /** Records the identity of `path` and `path-wal` as they are now (both exist once the outbox is open). */
  static watch(path: string): OutboxFiles {
    const main = identify(path);
    const wal = identify(`${path}-wal`);
    if (!main || !wal) throw new OutboxError(`the outbox at ${path} disappeared while it was being opened`);
    return new OutboxFiles(main, wal);
  }

  /** The size of both files now; throws `OutboxError` when either is no longer the file that was opened. */
  check(): OutboxFileSizes {
    const main = identify(this.#main.path);
    const wal = identify(this.#wal.path);
    if (!isSameFile(this.#main, main) || !isSameFile(this.#wal, wal)) {
      throw new OutboxError(
        `the outbox at ${this.#main.path} (or its -wal file) was deleted or replaced while the cache was running; ` +
          'new writes are refused because the outbox could not keep them. Writes accepted before keep flushing ' +
          'to the store from memory; restart the process to open a new outbox at that path (or restore the file)',
      );
    }
    return { mainBytes: main?.size ?? 0, walBytes: wal?.size ?? 0 };
  }
}
