import type {
  FeedReadOptions,
  StorageCallOptions,
  VersionedWrite,
} from '../../src/storage/contract/types.js';
import { MemoryStorage } from '../../src/storage/memory/memory-storage.js';

/** A store that ignores origins, as an adapter may (they are hints): every reader gets every change, its own included. */
export class IgnoresOrigins extends MemoryStorage {
  override apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    return super.apply(writes, opts?.signal ? { signal: opts.signal } : {});
  }
  override changes(after: string | null, opts?: FeedReadOptions) {
    const { skipOrigin: _, ...rest } = opts ?? {};
    return super.changes(after, rest);
  }
}
