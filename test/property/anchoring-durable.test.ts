import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { createHybridCache, MemoryStorage, type Storage } from '../../src/index.js';
import { silentLogger } from '../helpers/cache.js';

const runs = (base: number) => Number(process.env.PROPERTY_RUNS ?? 0) || base;
const KEYS = ['a', 'b'];
const root = mkdtempSync(join(tmpdir(), 'hc-anchoring-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Op = { kind: 'set' | 'delete' | 'append' | 'flush'; key: string };
const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom('set', 'delete', 'append', 'append', 'append', 'flush'),
  key: fc.constantFrom(...KEYS),
});

/** What a key reads as after a sequence of writes in call order. */
interface KeyModel {
  value: number | undefined;
  items: number[];
}

describe('the anchoring step scheduled against writes, with a durable outbox', () => {
  it('keeps call order for values and items, whether the mark arrives first, last or in between, and whether the store is ahead', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(opArb, { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        async (s, ops, storeAhead) => {
          const inner = new MemoryStorage();
          // Another instance wrote an hour ahead of this process's clock: every local write is below it.
          if (storeAhead) {
            await inner.apply([
              { key: 'other', version: (Date.now() + 3_600_000) * 1024, json: '0', expiresAt: null },
            ]);
          }
          // The mark's arrival is scheduled against the writes; the store's other calls are not.
          const storage: Storage = {
            getMany: (keys, opts) => inner.getMany(keys, opts),
            apply: (writes, opts) => inner.apply(writes, opts),
            highWaterMark: s.scheduleFunction(async () => inner.highWaterMark()),
          };
          const path = join(root, `outbox-${run++}.db`);
          const open = () =>
            createHybridCache<number>({
              storage,
              outbox: { path, durability: 'process' },
              flush: { batchSize: 2, intervalMs: 0, concurrency: 2 },
              retry: { baseMs: 1, maxMs: 2 },
              logger: silentLogger,
            });
          const cache = await open();
          const model = new Map<string, KeyModel>();
          for (const key of KEYS) {
            await cache.set(key, -1);
            model.set(key, { value: -1, items: [] });
          }

          const issue = (op: Op, index: number): Promise<void> => {
            const key = model.get(op.key) as KeyModel;
            switch (op.kind) {
              case 'set':
                if (key.value === undefined) key.items = [];
                key.value = index;
                return cache.set(op.key, index);
              case 'delete':
                key.value = undefined;
                key.items = [];
                return cache.delete(op.key);
              case 'append':
                // An item appended to a deleted key stays invisible, and a later set starts an empty log.
                if (key.value !== undefined) key.items.push(index);
                return cache.append(op.key, index);
              case 'flush':
                return cache.flush();
            }
          };
          // Issued in call order (each write's promise is not awaited before the next is issued).
          const launched = ops.map((op, index) => issue(op, index));
          await s.waitFor(Promise.all(launched));
          await s.waitFor(cache.flush());
          expect(cache.stats().pending).toBe(0);

          const expectModel = async (reader: typeof cache, who: string) => {
            for (const [key, expected] of model) {
              const got = await reader.getWithItems(key);
              const want =
                expected.value === undefined ? undefined : { value: expected.value, items: expected.items };
              expect(got, `${who} reads ${key}`).toEqual(want);
            }
          };
          await expectModel(cache, 'the writer');
          await cache.close();
          // A fresh instance over the store (its own empty outbox) reads the same.
          const fresh = await createHybridCache<number>({
            storage: inner,
            outbox: { durability: 'none' },
            logger: silentLogger,
          });
          await expectModel(fresh, 'a fresh instance');
          await fresh.close();
          // The outbox holds nothing after the drain: a restart replays nothing.
          const restarted = await open();
          expect(restarted.stats().pending).toBe(0);
          await s.waitFor(restarted.close());
        },
      ),
      { numRuns: runs(60) },
    );
  }, 120_000);
});
