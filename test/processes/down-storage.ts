import { type Storage, TransientStorageError } from '../../src/index.js';

const fail = async (): Promise<never> => {
  throw new TransientStorageError('store down (crash test)');
};

/** A store that is down for good: every call fails transiently, so writes stay in the outbox. */
export function downStorage(): Storage {
  return { getMany: fail, apply: fail, highWaterMark: fail };
}

/**
 * A store that answers its version high-water mark but refuses every write, so writes stay in the
 * outbox with versions anchored to the store. `markRead` settles once the mark has been read and
 * the cache has had a turn to take it.
 */
export function writesDownStorage(real: Storage): { storage: Storage; markRead: Promise<void> } {
  let read: () => void = () => {};
  const markRead = new Promise<void>((resolve) => (read = resolve));
  const storage: Storage = {
    getMany: fail,
    apply: fail,
    highWaterMark: async (opts) => {
      const mark = await real.highWaterMark(opts);
      setImmediate(read);
      return mark;
    },
  };
  return { storage, markRead };
}
