import { type Storage, TransientStorageError } from '../../src/index.js';

/** A store that is down for good: every call fails transiently, so writes stay in the outbox. */
export function downStorage(): Storage {
  const fail = async (): Promise<never> => {
    throw new TransientStorageError('store down (crash test)');
  };
  return { getMany: fail, apply: fail, highWaterMark: fail };
}
