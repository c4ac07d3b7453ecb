import { statSync } from 'node:fs';
import { join } from 'node:path';
import { hrtimeNow } from 'tinybench';
import { createHybridCache, type Storage } from '../../src/index.js';
import { SqliteOutbox } from '../../src/sync/sqlite-outbox.js';
import { type BenchContext, collectGarbage, prng, silentLogger, smallValue } from '../lib/harness.js';
import type { CaseReport, Figure } from '../lib/results.js';
import { median } from '../lib/stats.js';
import { ParkedStorage } from '../support/storages.js';

const PENDING = 100_000;

/**
 * Recovery: a process died leaving 100,000 unflushed writes in the outbox. Measured: the time from
 * `createHybridCache` until `stats().pending === 100000` (every write back in memory and readable),
 * and, with PostgreSQL, until all of them are in the store.
 */
export async function recovery(ctx: BenchContext): Promise<Omit<CaseReport, 'elapsedMs'>> {
  const quick = ctx.quick;
  const random = prng(5);
  const figures: Figure[] = [];
  const notes: string[] = [];
  const path = join(ctx.tmpDir, 'recovery-outbox.db');

  ctx.progress.step(`writing ${PENDING} pending rows into an outbox`);
  const outbox = SqliteOutbox.open({ path, durability: 'process' });
  const values = Array.from({ length: 1024 }, (_, i) => JSON.stringify(smallValue(random, i)));
  const now = Date.now();
  const chunk = 5_000;
  for (let start = 0; start < PENDING; start += chunk) {
    const appends: Promise<void>[] = [];
    for (let i = start; i < start + chunk; i++) {
      appends.push(
        outbox.append({
          key: `recover:${i}`,
          version: now * 1_000 + i,
          json: values[i & 1023] as string,
          expiresAt: now + 86_400_000,
          queuedAt: now,
        }),
      );
    }
    await Promise.all(appends);
  }
  outbox.close();
  const fileBytes = statSync(path).size;

  // Replay against a store that never answers, so the rows stay pending for the next run.
  const runs = quick ? 2 : 5;
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    ctx.progress.step(`replay ${r + 1}/${runs}`);
    collectGarbage();
    const started = hrtimeNow();
    const cache = await createHybridCache<object>({
      storage: new ParkedStorage(),
      outbox: { path, durability: 'process' },
      maxEntries: 1_000,
      maxPendingBytes: 512 * 2 ** 20,
      logger: silentLogger,
    });
    const pending = cache.stats().pending;
    const elapsedMs = hrtimeNow() - started;
    if (pending !== PENDING)
      throw new Error(`recovery: ${pending} pending after replay, expected ${PENDING}`);
    const probe = await cache.get('recover:4242');
    if (probe === undefined) throw new Error('recovery: a replayed write is not readable');
    times.push(elapsedMs);
    await cache.close({ timeoutMs: 1 });
  }
  figures.push({
    id: 'recovery.replay-100k',
    case: 'recovery',
    label: `replay ${PENDING.toLocaleString('en-US')} pending writes: createHybridCache until stats().pending === ${PENDING}`,
    value: median(times),
    unit: 'ms',
    details: {
      runs,
      minMs: Math.round(Math.min(...times)),
      maxMs: Math.round(Math.max(...times)),
      outboxFileBytes: fileBytes,
      valueBytes: values[0]?.length ?? 0,
    },
  });

  // Drain: the same 100,000 writes flushed to PostgreSQL through the gateway after the replay.
  if (ctx.pg) {
    ctx.progress.step(`replay + drain of ${PENDING} writes to PostgreSQL`);
    const storage: Storage = ctx.pg.storage();
    collectGarbage();
    const started = hrtimeNow();
    const cache = await createHybridCache<object>({
      storage,
      outbox: { path, durability: 'process' },
      maxEntries: 1_000,
      maxPendingBytes: 512 * 2 ** 20,
      logger: silentLogger,
    });
    const replayedMs = hrtimeNow() - started;
    await cache.flush();
    const drainedMs = hrtimeNow() - started;
    const stats = cache.stats();
    await cache.close();
    if (stats.pending !== 0 || stats.flushedWrites !== PENDING) {
      throw new Error(`recovery: drain left ${stats.pending} pending, applied ${stats.flushedWrites}`);
    }
    figures.push({
      id: 'recovery.drain-100k',
      case: 'recovery',
      label: `replay then drain ${PENDING.toLocaleString('en-US')} writes to PostgreSQL (default flush settings)`,
      value: drainedMs,
      unit: 'ms',
      details: { replayMs: Math.round(replayedMs), writesPerSec: Math.round((PENDING / drainedMs) * 1000) },
    });
  } else {
    notes.push(`Drain to PostgreSQL skipped: ${ctx.pgUnavailable}.`);
  }
  notes.push(
    'Replay reads every pending row of the outbox (SQLite, WAL), puts it back in the dirty set (readable at once) and schedules it for flushing; createHybridCache resolves after that, so the figure is the time until a restarted daemon serves every acknowledged write.',
    `Values are ~${values[0]?.length ?? 0}-byte JSON; the outbox file is ${(fileBytes / 2 ** 20).toFixed(1)} MiB.`,
  );
  return {
    id: 'recovery',
    title: 'Recovery',
    method: `Outbox replay time for ${PENDING.toLocaleString('en-US')} pending writes left by a dead process. Median of ${runs} runs.`,
    figures,
    notes,
  };
}
