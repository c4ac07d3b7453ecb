import { afterAll, beforeAll, describe, it } from 'vitest';
import type { FeedReadOptions, StorageCallOptions, VersionedWrite } from '../../src/index.js';
import { MemoryStorage } from '../../src/storage/memory/memory-storage.js';
import {
  describeAppendContract,
  describeFeedContract,
  describeStorageContract,
} from '../../src/testing/index.js';

const runner = { describe, it, beforeAll, afterAll };

describeStorageContract('MemoryStorage', async () => ({ storage: new MemoryStorage() }), runner);

describeAppendContract('MemoryStorage', async () => ({ storage: new MemoryStorage() }), runner);

/** A store that ignores origins, as an adapter may: every reader gets every change. */
class IgnoresOrigins extends MemoryStorage {
  override apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    return super.apply(writes, opts?.signal ? { signal: opts.signal } : {});
  }
  override changes(after: string | null, opts?: FeedReadOptions) {
    const { skipOrigin: _, ...rest } = opts ?? {};
    return super.changes(after, rest);
  }
}

describeFeedContract(
  'a store that ignores origins',
  async () => ({ storage: new IgnoresOrigins(), skipsOrigin: false }),
  runner,
);
