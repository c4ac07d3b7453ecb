import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ABANDON, type HybridCache } from '../../src/cache/hybrid-cache.js';
import { createHybridCache, MemoryStorage, SqliteStorage, type Storage } from '../../src/index.js';
import { FaultyStorage } from '../../src/testing/index.js';
import { silentLogger } from '../helpers/cache.js';

/**
 * Several cache instances on one store appending to the same keys, under store outages, lost
 * answers, crash-restarts and fresh disks with the clock behind: once everything is flushed, every
 * acknowledged item is in the store exactly once, each instance's items in the order it appended
 * them, and every reader (each instance after a restart, and a new one) reads the same log.
 */

const KEYS = ['x', 'y'] as const;
const INSTANCES = 3;

type Op =
  | { kind: 'append'; instance: number; key: (typeof KEYS)[number] }
  | { kind: 'crash'; instance: number }
  | { kind: 'freshDisk'; instance: number; behindMs: number }
  | { kind: 'flush'; instance: number }
  | { kind: 'storeDown' }
  | { kind: 'storeUp' }
  | { kind: 'commitThenFail' };

const instanceArb = fc.integer({ min: 0, max: INSTANCES - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      instance: instanceArb,
      key: fc.constantFrom(...KEYS),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), instance: instanceArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('freshDisk' as const),
      instance: instanceArb,
      behindMs: fc.constantFrom(0, 60_000, 3_600_000),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flush' as const), instance: instanceArb }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'storeDown' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'storeUp' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'commitThenFail' as const }) },
);

interface Instance {
  cache: HybridCache;
  outboxPath: string;
  disks: number;
  /** Added to Date.now() for this instance's clock (negative: behind). */
  skewMs: number;
}

async function run(createStore: (dir: string) => Storage, ops: Op[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hc-multi-'));
  const store = new FaultyStorage(createStore(dir));
  const realNow = Date.now;
  let skewMs = 0;
  Date.now = () => realNow() + skewMs;
  const open = async (instance: Pick<Instance, 'outboxPath' | 'skewMs'>) => {
    skewMs = instance.skewMs;
    return (await createHybridCache({
      storage: store,
      outbox: { path: instance.outboxPath, durability: 'process' },
      flush: { batchSize: 4, intervalMs: 2, concurrency: 2 },
      retry: { baseMs: 5, maxMs: 50 },
      breaker: { failureThreshold: 50, halfOpenAfterMs: 20 },
      logger: silentLogger,
    })) as HybridCache;
  };
  const instances: Instance[] = [];
  try {
    for (let i = 0; i < INSTANCES; i++) {
      const outboxPath = join(dir, `outbox-${i}-0.db`);
      instances.push({ cache: await open({ outboxPath, skewMs: 0 }), outboxPath, disks: 0, skewMs: 0 });
    }
    await instances[0]?.cache.set('x', 'header-x');
    await instances[0]?.cache.set('y', 'header-y');
    await instances[0]?.cache.flush();
    /** What each instance appended (acknowledged), per key, in its order. */
    const appended = new Map<string, string[][]>(KEYS.map((key) => [key, instances.map(() => [])]));
    let n = 0;
    for (const op of ops) {
      const instance = 'instance' in op ? (instances[op.instance] as Instance) : undefined;
      if (instance) skewMs = instance.skewMs;
      switch (op.kind) {
        case 'append': {
          const item = `i${op.instance}-${n++}`;
          await instance?.cache.append(op.key, item);
          appended.get(op.key)?.[op.instance]?.push(item);
          break;
        }
        case 'crash':
          await instance?.cache[ABANDON]();
          if (instance) instance.cache = await open(instance);
          break;
        case 'freshDisk':
          if (!instance) break;
          {
            // Another host took over: the old one drained first, then a new one starts empty, its
            // clock behind, and (if the store was down) appends before it can read the store's mark.
            const wasDown = store.unhealthy;
            store.comeUp();
            await instance.cache.flush();
            await instance.cache[ABANDON]();
            if (wasDown) store.goDown();
            instance.skewMs = -op.behindMs;
            instance.outboxPath = join(dir, `outbox-${op.instance}-${++instance.disks}.db`);
            instance.cache = await open(instance);
            break;
          }
        case 'flush':
          await instance?.cache.flush({ timeoutMs: 200 }).catch(() => {});
          break;
        case 'storeDown':
          store.goDown();
          break;
        case 'storeUp':
          store.comeUp();
          break;
        case 'commitThenFail':
          store.commitThenFailNext(1);
          break;
      }
    }
    store.comeUp();
    for (const instance of instances) {
      skewMs = instance.skewMs;
      await instance.cache.flush();
    }
    for (const key of KEYS) {
      const stored = (await store.inner.getMany([key])).get(key);
      const items = (stored?.items ?? []).map((item) => JSON.parse(item.json) as string);
      const expected = appended.get(key) ?? [];
      // Exactly once: the same multiset.
      expect([...items].sort()).toEqual(expected.flat().sort());
      // Each instance's items in the order it appended them.
      for (const [i, mine] of expected.entries()) {
        expect(items.filter((item) => item.startsWith(`i${i}-`))).toEqual(mine);
      }
      // Every reader reads that same log: each instance after a restart, and a new instance.
      for (const instance of instances) {
        skewMs = instance.skewMs;
        await instance.cache[ABANDON]();
        instance.cache = await open(instance);
        expect((await instance.cache.getWithItems(key))?.items).toEqual(items);
      }
    }
  } finally {
    for (const instance of instances) await instance.cache[ABANDON]();
    Date.now = realNow;
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const runs = Number(process.env.PROPERTY_RUNS ?? 0) || 12;

describe('appends from several cache instances on one store', () => {
  it('MemoryStorage: every acknowledged item once, in each writer’s order, one log for every reader', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), (ops) => run(() => new MemoryStorage(), ops)),
      { numRuns: runs },
    );
  }, 300_000);

  it('SqliteStorage: every acknowledged item once, in each writer’s order, one log for every reader', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), (ops) =>
        run((dir) => new SqliteStorage({ path: join(dir, 'store.db') }), ops),
      ),
      { numRuns: runs },
    );
  }, 300_000);
});
