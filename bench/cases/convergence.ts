import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CACHE_OPTION_DEFAULTS as DEFAULTS } from '../../src/cache/option-defaults.js';
import { SqliteStorage, type Storage } from '../../src/index.js';
import { startLineChild } from '../../test/support/line-child.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { prng, text } from '../lib/data.js';
import { summarize } from '../lib/measure.js';

const KEYS = 16;
const READER = join(import.meta.dirname, '..', 'support', 'feed-reader.ts');

/**
 * Convergence over a shared store at the default feed settings (poll every 100 ms): the time from
 * the writer's `flush()` resolving to the other instance, in another process, serving the new
 * version. The reader (`support/feed-reader.ts`) watches the key with a `get` on every 'changes'
 * event and a `get` every millisecond; both processes read the same monotonic clock. Each sample
 * waits a random 0-100 ms before writing, so the flush lands at a random phase of the reader's poll.
 */
export async function convergence(ctx: BenchContext): Promise<Figure[]> {
  const samples = ctx.quick ? 60 : 250;
  const figures: Figure[] = [];
  const path = join(ctx.tmpDir, 'convergence.db');
  figures.push(
    await measureConvergence(ctx, {
      id: 'convergence.sqlite',
      label: 'SQLite: writer flush() resolved → reader in another process serves the new version',
      writerStorage: new SqliteStorage({ path }),
      readerEnv: { FEED_SQLITE_PATH: path },
      samples,
    }),
  );
  const supabase = ctx.supabase;
  if (supabase) {
    figures.push(
      await measureConvergence(ctx, {
        id: 'convergence.supabase',
        label:
          'Supabase (gateway + PostgreSQL): writer flush() resolved → reader in another process serves the new version',
        writerStorage: supabase.storage(),
        readerEnv: { FEED_SUPABASE_URL: supabase.url, FEED_SUPABASE_KEY: supabase.serviceRoleKey },
        samples,
      }),
    );
  }
  return figures;
}

/**
 * One convergence figure: `samples` writes by a cache over `writerStorage`, each timed until the
 * reader process (started with `readerEnv`) serves it. `pollIntervalMs` / `maxStalenessMs` are
 * the reader's feed settings when not the defaults (they must also be passed in `readerEnv`, as
 * FEED_POLL_MS / FEED_MAX_STALENESS_MS); the random wait before each write spans one poll
 * interval, at most 100 ms.
 */
export async function measureConvergence(
  ctx: BenchContext,
  run: {
    id: string;
    label: string;
    writerStorage: Storage;
    readerEnv: Record<string, string>;
    samples: number;
    pollIntervalMs?: number;
    maxStalenessMs?: number;
    /** Also receives every sample (ns), to pool several runs into one figure. */
    sink?: { latenciesNs: number[]; via: { event: number; poll: number } };
  },
): Promise<Figure> {
  const random = prng(7);
  const pollMs = run.pollIntervalMs ?? DEFAULTS.feed.pollIntervalMs;
  const phaseMs = Math.min(pollMs, 100);
  const keys = Array.from({ length: KEYS }, (_, i) => `${run.id}:${i}`);
  const pad = text(random, 160);
  ctx.step(`${run.id}: starting the writer and the reader process`);
  const writer = await benchCache({ storage: run.writerStorage });
  const reader = startLineChild(READER, run.readerEnv, 30_000);
  const latenciesNs: number[] = [];
  // The two parts: flush resolved → the reader's 'changes' event; the event → the new value served.
  const toEventNs: number[] = [];
  const eventToServedNs: number[] = [];
  const via = { event: 0, poll: 0 };
  try {
    for (const key of keys) await writer.set(key, { n: -1, pad });
    await writer.flush();
    await reader.send({ op: 'read', keys });
    ctx.step(`${run.id}: ${run.samples} samples`);
    for (let s = 0; s < run.samples; s++) {
      const key = keys[s % KEYS] as string;
      await reader.send({ op: 'arm', key, n: s });
      await sleep(random() * phaseMs);
      await writer.set(key, { n: s, pad });
      await writer.flush();
      const flushedAt = process.hrtime.bigint();
      const seen = await reader.send<{
        ok: boolean;
        servedAtNs: string;
        eventAtNs: string;
        via: 'event' | 'poll';
        error?: string;
      }>({ op: 'wait' });
      if (!seen.ok) throw new Error(`convergence: the reader failed: ${seen.error}`);
      latenciesNs.push(Number(BigInt(seen.servedAtNs) - flushedAt));
      if (seen.eventAtNs !== '') {
        toEventNs.push(Number(BigInt(seen.eventAtNs) - flushedAt));
        eventToServedNs.push(Number(BigInt(seen.servedAtNs) - BigInt(seen.eventAtNs)));
      }
      via[seen.via]++;
    }
    run.sink?.latenciesNs.push(...latenciesNs);
    if (run.sink) for (const how of ['event', 'poll'] as const) run.sink.via[how] += via[how];
    const { stats } = await reader.send<{ stats: Record<string, unknown> }>({ op: 'stats' });
    const latencyNs = summarize(latenciesNs);
    const ms = (ns: number) => Number((ns / 1e6).toFixed(1));
    const [toEvent, eventToServed] = [summarize(toEventNs), summarize(eventToServedNs)];
    return {
      id: run.id,
      label: run.label,
      latencyNs,
      details: {
        pollIntervalMs: pollMs,
        maxStalenessMs: run.maxStalenessMs ?? DEFAULTS.maxStalenessMs,
        readerInChildProcess: true,
        samples: latenciesNs.length,
        within250ms: latenciesNs.filter((ns) => ns <= 250e6).length,
        within50ms: latenciesNs.filter((ns) => ns <= 50e6).length,
        seenViaChangesEvent: via.event,
        seenViaMsPoll: via.poll,
        flushToEventP50Ms: ms(toEvent.p50),
        flushToEventP99Ms: ms(toEvent.p99),
        eventToServedP50Ms: ms(eventToServed.p50),
        eventToServedP99Ms: ms(eventToServed.p99),
        maxMs: ms(latencyNs.max),
        readerFeedChanges: Number(stats.feedChanges),
        readerFeedDrops: Number(stats.feedDrops),
        readerRevalidations: Number(stats.revalidations),
        readerPossiblyStaleReads: Number(stats.possiblyStaleReads),
        readerDoorbell: String(stats.doorbell ?? 'n/a'),
      },
    };
  } finally {
    if (reader.process.exitCode === null && reader.process.signalCode === null) {
      const exited = new Promise((resolve) => reader.process.once('exit', resolve));
      reader.process.stdin?.end();
      await exited;
    }
    await writer.close({ timeoutMs: 1_000 });
    await run.writerStorage.close?.();
  }
}
