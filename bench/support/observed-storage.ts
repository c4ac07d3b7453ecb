import type { Storage } from '../../src/storage/contract/types.js';

/**
 * A store as a cache sees it, watched: the span of every `apply` (to tell how many batches were in
 * flight and how fast writes went out between the first leaving and the last answered) and the
 * number of change-feed reads.
 */
export function observedStorage(inner: Storage) {
  const spans: Array<{ start: number; end: number; writes: number }> = [];
  let feedReads = 0;
  const apply: Storage['apply'] = async (writes, opts) => {
    const start = performance.now();
    try {
      return await inner.apply(writes, opts);
    } finally {
      spans.push({ start, end: performance.now(), writes: writes.length });
    }
  };
  const innerChanges = inner.changes?.bind(inner);
  const changes: Storage['changes'] =
    innerChanges &&
    ((after, opts) => {
      feedReads++;
      return innerChanges(after, opts);
    });
  const storage = new Proxy(inner, {
    get(target, name) {
      if (name === 'apply') return apply;
      if (name === 'changes') return changes;
      const value = Reflect.get(target, name, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  /** From the first batch leaving to the last answered: the mean batches in flight, and writes a second. */
  const window = () => {
    const first = Math.min(...spans.map((s) => s.start));
    const last = Math.max(...spans.map((s) => s.end));
    const busy = spans.reduce((sum, s) => sum + s.end - s.start, 0);
    const writes = spans.reduce((sum, s) => sum + s.writes, 0);
    return {
      firstBatchAt: first,
      inFlight: busy / (last - first),
      writesPerSec: (writes / (last - first)) * 1000,
    };
  };
  return { storage, feedReads: () => feedReads, window };
}
