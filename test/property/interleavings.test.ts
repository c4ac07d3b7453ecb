import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createHybridCache,
  MemoryStorage,
  type Storage,
  TransientStorageError,
  type VersionedWrite,
} from '../../src/index.js';
import { settleWithTimers, silentLogger } from '../helpers/cache.js';

const runs = (base: number) => Number(process.env.PROPERTY_RUNS ?? 0) || base;
const KEYS = ['a', 'b', 'c'];

type Op = { kind: 'set' | 'delete' | 'get' | 'flush'; key: string };
const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom('set', 'set', 'delete', 'get', 'get', 'flush'),
  key: fc.constantFrom(...KEYS),
});

afterEach(() => {
  vi.useRealTimers();
});

describe('interleavings (fc.scheduler)', () => {
  it('concurrent set/delete/get against in-flight flushes and retries keep last-writer-wins and read-your-writes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(opArb, { minLength: 1, maxLength: 25 }),
        fc.array(fc.boolean(), { maxLength: 10 }),
        async (s, ops, failures) => {
          const inner = new MemoryStorage();
          const failPlan = [...failures];
          const storage: Storage = {
            getMany: s.scheduleFunction(async (keys: string[]) => inner.getMany(keys)),
            apply: s.scheduleFunction(async (writes: VersionedWrite[]) => {
              if (failPlan.shift()) throw new TransientStorageError('injected');
              return inner.apply(writes);
            }),
            highWaterMark: s.scheduleFunction(async () => inner.highWaterMark()),
          };
          const cache = await createHybridCache<{ i: number }>({
            storage,
            outbox: { durability: 'none' },
            flush: { batchSize: 2, intervalMs: 0, concurrency: 2 },
            retry: { baseMs: 1, maxMs: 2 },
            breaker: { failureThreshold: 1_000, halfOpenAfterMs: 1 },
            logger: silentLogger,
          });

          // Writes in call order; a write's value is its call index, so a read tells which write it saw.
          const writes: Array<{ key: string; index: number; deleted: boolean; resolved: boolean }> = [];
          const readChecks: Array<Promise<void>> = [];
          const issue = (op: Op) => {
            if (op.kind === 'set' || op.kind === 'delete') {
              const w = { key: op.key, index: writes.length, deleted: op.kind === 'delete', resolved: false };
              writes.push(w);
              const p = op.kind === 'set' ? cache.set(op.key, { i: w.index }) : cache.delete(op.key);
              return p.then(() => {
                w.resolved = true;
              });
            }
            if (op.kind === 'flush') return cache.flush();
            // Read-your-writes: the read sees the newest write to the key that had resolved before it was
            // issued, or a write issued after that one; never an older one.
            const floor = Math.max(
              -1,
              ...writes.filter((w) => w.key === op.key && w.resolved).map((w) => w.index),
            );
            const check = cache.get(op.key).then((got) => {
              const seen = got === undefined ? undefined : got.i;
              if (floor === -1) return;
              const allowed = writes.filter((w) => w.key === op.key && w.index >= floor);
              const ok = allowed.some((w) => (w.deleted ? seen === undefined : seen === w.index));
              expect(ok, `get(${op.key}) saw ${seen}, newest resolved write was #${floor}`).toBe(true);
            });
            readChecks.push(check);
            return check;
          };
          const launched = ops.map((op) => s.schedule(Promise.resolve(op)).then(issue));
          await s.waitFor(Promise.all(launched));
          await s.waitFor(Promise.all(readChecks));
          await s.waitFor(cache.flush());

          for (const key of KEYS) {
            const last = writes.filter((w) => w.key === key).at(-1);
            const stored = inner.peek(key);
            if (!last) {
              expect(stored).toBeUndefined();
              continue;
            }
            expect(stored?.json ?? null, `store holds the last write to ${key}`).toBe(
              last.deleted ? null : JSON.stringify({ i: last.index }),
            );
            const read = await s.waitFor(cache.get(key));
            expect(read).toEqual(last.deleted ? undefined : { i: last.index });
          }
          expect(cache.stats().pending).toBe(0);
          await s.waitFor(cache.close());
        },
      ),
      { numRuns: runs(150) },
    );
  }, 120_000);
});

describe('two instances over one store', () => {
  it('after both flush, the store holds the highest version per key, and each instance reads it once its copy is evicted', async () => {
    type Step = { instance: 0 | 1; key: string; op: 'set' | 'delete'; advanceMs: number };
    const stepArb: fc.Arbitrary<Step> = fc.record({
      instance: fc.constantFrom(0 as const, 1 as const),
      key: fc.constantFrom(...KEYS),
      op: fc.constantFrom('set' as const, 'set' as const, 'delete' as const),
      advanceMs: fc.constantFrom(0, 0, 1, 3),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 30 }), async (steps) => {
        vi.useFakeTimers();
        const inner = new MemoryStorage();
        const sent: VersionedWrite[] = [];
        const storage: Storage = {
          getMany: (keys, opts) => inner.getMany(keys, opts),
          apply: (writes, opts) => {
            sent.push(...writes);
            return inner.apply(writes, opts);
          },
          highWaterMark: (opts) => inner.highWaterMark(opts),
        };
        const open = () =>
          createHybridCache<{ by: number; n: number }>({
            storage,
            outbox: { durability: 'none' },
            maxEntries: 1,
            flush: { batchSize: 2, intervalMs: 2, concurrency: 1 },
            logger: silentLogger,
          });
        const caches = [await open(), await open()];
        for (const [n, step] of steps.entries()) {
          const cache = caches[step.instance]!;
          if (step.op === 'set') await cache.set(step.key, { by: step.instance, n });
          else await cache.delete(step.key);
          if (step.advanceMs) await vi.advanceTimersByTimeAsync(step.advanceMs);
        }
        await settleWithTimers(Promise.all(caches.map((c) => c.flush())));

        for (const key of KEYS) {
          const forKey = sent.filter((w) => w.key === key);
          const stored = inner.peek(key);
          if (forKey.length === 0) {
            expect(stored).toBeUndefined();
            continue;
          }
          const highest = Math.max(...forKey.map((w) => w.version));
          expect(stored?.version).toBe(highest);
          // Equal versions from two writers are a tie: the first to arrive wins, and both converge on it.
          const candidates = forKey.filter((w) => w.version === highest).map((w) => w.json);
          expect(candidates).toContain(stored?.json ?? null);
        }
        for (const [i, cache] of caches.entries()) {
          await cache.set(`filler-${i}`, { by: i, n: -1 }); // with maxEntries 1, this evicts the instance's own copies
          await settleWithTimers(cache.flush());
          for (const key of KEYS) {
            const stored = inner.peek(key);
            const expected = stored?.json ? JSON.parse(stored.json) : undefined;
            expect(await cache.get(key), `instance ${i} reads ${key}`).toEqual(expected);
          }
        }
      }),
      { numRuns: runs(100) },
    );
  }, 120_000);
});
