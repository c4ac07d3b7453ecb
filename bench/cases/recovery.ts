import { statSync } from 'node:fs';
import { join } from 'node:path';
import { hrtimeNow } from 'tinybench';
import type { Storage } from '../../src/index.js';
import { SqliteOutbox } from '../../src/sync/outbox/sqlite-outbox.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { prng, smallValue } from '../lib/data.js';
import { collectGarbage, median } from '../lib/measure.js';
import { ParkedStorage } from '../support/storages.js';

const PENDING = 100_000;

/**
 * Recovery: a process died leaving 100,000 unflushed writes in its outbox. The time from
 * `createHybridCache` until every write is back in memory and readable, and, with PostgreSQL,
 * until all of them are in the store.
 */
export async function recovery(ctx: BenchContext): Promise<Figure[]> {
  const path = join(ctx.tmpDir, 'recovery-outbox.db');
  ctx.step(`writing ${PENDING} pending rows into an outbox`);
  const random = prng(5);
  const values = Array.from({ length: 1024 }, (_, i) => JSON.stringify(smallValue(random, i)));
  const outbox = SqliteOutbox.open({ path, durability: 'process' });
  const now = Date.now();
  for (let start = 0; start < PENDING; start += 5_000) {
    const chunk = Array.from({ length: 5_000 }, (_, k) => start + k);
    await Promise.all(
      chunk.map((i) =>
        outbox.append({
          key: `recover:${i}`,
          version: now * 1_000 + i,
          json: values[i & 1023] as string,
          expiresAt: now + 86_400_000,
          queuedAt: now,
        }),
      ),
    );
  }
  outbox.close();
  const details = { outboxFileBytes: statSync(path).size, valueBytes: values[0]?.length ?? 0 };

  const restart = async (storage: Storage) => {
    collectGarbage();
    const started = hrtimeNow();
    const cache = await benchCache({
      storage,
      outbox: { path, durability: 'process' },
      maxEntries: 1_000,
      maxPendingBytes: 512 * 2 ** 20,
    });
    return { cache, started, replayedMs: hrtimeNow() - started };
  };

  // Against a store that never answers, so the writes stay pending for the next run.
  const runs = ctx.quick ? 2 : 5;
  const times: number[] = [];
  for (let run = 0; run < runs; run++) {
    ctx.step(`replay ${run + 1}/${runs}`);
    const { cache, replayedMs } = await restart(new ParkedStorage());
    const pending = cache.stats().pending;
    if (pending !== PENDING)
      throw new Error(`recovery: ${pending} pending after replay, expected ${PENDING}`);
    if ((await cache.get('recover:4242')) === undefined)
      throw new Error('recovery: a replayed write is not readable');
    times.push(replayedMs);
    await cache.close({ timeoutMs: 1 });
  }
  const figures: Figure[] = [
    {
      id: 'recovery.replay-100k',
      label: `replay ${PENDING.toLocaleString('en-US')} pending writes: createHybridCache until stats().pending === ${PENDING}`,
      value: median(times),
      unit: 'ms',
      details: {
        runs,
        minMs: Math.round(Math.min(...times)),
        maxMs: Math.round(Math.max(...times)),
        ...details,
      },
    },
  ];

  if (ctx.supabase) {
    ctx.step(`replay + drain of ${PENDING} writes to PostgreSQL`);
    const { cache, started, replayedMs } = await restart(ctx.supabase.storage());
    await cache.flush();
    const drainedMs = hrtimeNow() - started;
    const stats = cache.stats();
    await cache.close();
    if (stats.pending !== 0 || stats.flushedWrites !== PENDING) {
      throw new Error(`recovery: drain left ${stats.pending} pending, applied ${stats.flushedWrites}`);
    }
    figures.push({
      id: 'recovery.drain-100k',
      label: `replay then drain ${PENDING.toLocaleString('en-US')} writes to PostgreSQL (default flush settings)`,
      value: drainedMs,
      unit: 'ms',
      details: { replayMs: Math.round(replayedMs), writesPerSec: Math.round((PENDING / drainedMs) * 1000) },
    });
  }
  return figures;
}
