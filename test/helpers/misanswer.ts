import type { ApplyResult, Storage, VersionedWrite } from '../../src/index.js';

/**
 * The next `times` apply calls to `storage` return `answer(writes)` without writing anything (an
 * adapter breaking its contract); later calls go through.
 */
export function misanswerApply(
  storage: Storage,
  times: number,
  answer: (writes: VersionedWrite[]) => unknown,
): void {
  const apply = storage.apply.bind(storage);
  let left = times;
  storage.apply = async (writes, options) => {
    if (left <= 0) return apply(writes, options);
    left--;
    return answer(writes) as ApplyResult[];
  };
}
