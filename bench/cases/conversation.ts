import { join } from 'node:path';
import { hrtimeNow } from 'tinybench';
import { ConversationStore, type NewTurn, type ThreadContext } from '../../src/conversation/index.js';
import { ThreadContextSchema } from '../../src/conversation/schemas.js';
import type { HybridCache } from '../../src/index.js';
import { type BenchContext, benchCache, type Figure } from '../lib/case.js';
import { TURNS_PER_THREAD, threadTurns } from '../lib/data.js';
import { collectGarbage, summarize, yieldToEventLoop } from '../lib/measure.js';
import { CountingStorage, NullStorage } from '../support/storages.js';
import { runMemoryChild } from './memory.js';

/**
 * Conversation workload: threads of 50 turns with 1-60 KB bodies through ConversationStore.addTurn
 * (durability process, flushing to the store), threads in parallel, turns of a thread back to back.
 */
export async function conversation(ctx: BenchContext): Promise<Figure[]> {
  const threads = ctx.quick ? 4 : 16;
  const storage = new CountingStorage(ctx.supabase?.storage() ?? new NullStorage());
  const cache = await benchCache({
    storage,
    outbox: { path: join(ctx.tmpDir, 'conversation-outbox.db'), durability: 'process' },
  });
  const store = new ConversationStore({ cache });
  const workloads = Array.from({ length: threads }, (_, t) => threadTurns(t));
  const turnBodyBytes = workloads.flat().reduce((sum, turn) => sum + turn.content.length, 0);

  ctx.step(`${threads} threads × ${TURNS_PER_THREAD} turns, concurrently`);
  const ids: string[] = [];
  const { latencies, byTurn, turnsMs, drainedMs } = await runTurns(cache, workloads, {
    create: async () => {
      const id = await store.createThread({ tool_name: 'chat', initial_context: { prompt: 'benchmark' } });
      ids.push(id);
      return id;
    },
    addTurn: async (id, turn) => {
      await store.addTurn(id, turn);
    },
  });
  const stats = cache.stats();

  // Without coalescing (one write per turn, as the original plan's upsert per turn), every change
  // sends the whole thread document, from creation to the last turn.
  let uncoalescedBytes = 0;
  let finalBytes = 0;
  for (const id of ids) {
    const thread = (await store.getThread(id)) as ThreadContext;
    if (thread.turns.length !== TURNS_PER_THREAD) throw new Error('conversation: a thread lost turns');
    for (let k = 0; k <= thread.turns.length; k++) {
      uncoalescedBytes += Buffer.byteLength(JSON.stringify({ ...thread, turns: thread.turns.slice(0, k) }));
    }
    finalBytes += Buffer.byteLength(JSON.stringify(thread));
  }
  await cache.close();

  ctx.step(`baseline: the same turns, each rewriting its whole thread`);
  const wholeStorage = new CountingStorage(ctx.supabase?.storage() ?? new NullStorage());
  const wholeCache = await benchCache({
    storage: wholeStorage,
    outbox: { path: join(ctx.tmpDir, 'conversation-whole-outbox.db'), durability: 'process' },
  });
  const whole = await runTurns(wholeCache, workloads, wholeThreadModel(wholeCache));
  await wholeCache.close();

  ctx.step('memory per thread (child process)');
  const heapFigures = await runMemoryChild({ entries: 0, threads: ctx.quick ? 2 : 8 });
  const turns = threads * TURNS_PER_THREAD;
  return [
    {
      id: 'conversation.turns',
      label: `addTurn, ${threads} threads concurrently (turn latency; rate = turns/s)`,
      latencyNs: summarize(latencies),
      opsPerSec: (turns / turnsMs) * 1000,
      details: {
        threads,
        turns,
        elapsedMs: Math.round(turnsMs),
        drainedMs: Math.round(drainedMs),
        meanTurnBodyBytes: Math.round(turnBodyBytes / turns),
        meanThreadBytes: Math.round(finalBytes / threads),
        store: ctx.supabase ? 'SupabaseStorage via the test gateway' : 'no-op (PostgreSQL unavailable)',
      },
    },
    {
      id: 'conversation.bytes-per-turn-uncoalesced',
      label: 'bytes sent to the store per turn without coalescing (one write per turn, as the original plan)',
      value: uncoalescedBytes / turns,
      unit: 'bytes',
      baseline: 'conversation.turn-body',
    },
    {
      id: 'conversation.bytes-per-turn',
      label: 'bytes sent to the store per turn with coalescing (measured at the store adapter)',
      value: storage.counts.valueBytes / turns,
      unit: 'bytes',
      baseline: 'conversation.bytes-per-turn-uncoalesced',
      details: {
        setCalls: threads * (TURNS_PER_THREAD + 1),
        writesSent: storage.counts.writes,
        storeCalls: storage.counts.applyCalls,
        coalescedWrites: stats.coalescedWrites,
      },
    },
    {
      id: 'conversation.turns-whole-thread',
      label: 'baseline: the same turns, each reading and rewriting its whole thread (the earlier data model)',
      latencyNs: summarize(whole.latencies),
      opsPerSec: (turns / whole.turnsMs) * 1000,
      details: {
        drainedMs: Math.round(whole.drainedMs),
        bytesPerTurn: Math.round(wholeStorage.counts.valueBytes / turns),
      },
    },
    {
      id: 'conversation.turn-latency-growth',
      label: 'addTurn median latency of turns 41-50 over turns 1-10 (1 = flat in thread length)',
      value: growth(byTurn),
      details: {
        medianUsByTurn: medianUs(byTurn).join(' '),
        wholeThreadGrowth: growth(whole.byTurn),
        wholeThreadMedianUsByTurn: medianUs(whole.byTurn).join(' '),
      },
      series: {
        xLabel: 'turn number in its thread',
        yLabel: 'median addTurn latency (µs)',
        lines: [
          { name: 'append-only turns (one item per turn)', values: medianUs(byTurn) },
          { name: 'whole thread rewritten per turn (earlier model)', values: medianUs(whole.byTurn) },
        ],
      },
    },
    {
      id: 'conversation.turn-body',
      label: 'mean turn body (content) size',
      value: turnBodyBytes / turns,
      unit: 'bytes',
    },
    ...heapFigures,
  ];
}

interface TurnModel {
  create(thread: number): Promise<string>;
  addTurn(id: string, turn: NewTurn): Promise<void>;
}

/** Runs every thread's turns (threads in parallel, a thread's turns back to back), then waits for the flush. */
async function runTurns(cache: HybridCache<object>, workloads: NewTurn[][], model: TurnModel) {
  collectGarbage();
  const latencies: number[] = [];
  /** Latencies by turn number (0-based), to show whether a turn's cost grows with its thread. */
  const byTurn: number[][] = Array.from({ length: TURNS_PER_THREAD }, () => []);
  const started = hrtimeNow();
  await Promise.all(
    workloads.map(async (turns, t) => {
      const id = await model.create(t);
      for (const [n, turn] of turns.entries()) {
        const turnStarted = hrtimeNow();
        await model.addTurn(id, turn);
        const ns = (hrtimeNow() - turnStarted) * 1e6;
        latencies.push(ns);
        byTurn[n]?.push(ns);
        await yieldToEventLoop(); // turns arrive as separate requests
      }
    }),
  );
  const turnsMs = hrtimeNow() - started;
  await cache.flush();
  return { latencies, byTurn, turnsMs, drainedMs: hrtimeNow() - started };
}

/**
 * The earlier data model, for comparison: a thread is one value holding every turn, and a turn
 * reads the thread, validates it, and writes all of it back.
 */
function wholeThreadModel(cache: HybridCache<object>): TurnModel {
  return {
    create: async (t) => {
      const id = `whole-${t}`;
      const now = new Date().toISOString();
      await cache.set(id, {
        thread_id: id,
        parent_thread_id: null,
        created_at: now,
        last_updated_at: now,
        tool_name: 'chat',
        turns: [],
        initial_context: { prompt: 'benchmark' },
      });
      return id;
    },
    addTurn: async (id, turn) => {
      const thread = ThreadContextSchema.parse(await cache.get(id));
      const timestamp = new Date().toISOString();
      await cache.set(id, {
        ...thread,
        turns: [...thread.turns, { ...turn, timestamp }],
        last_updated_at: timestamp,
      });
    },
  };
}

function medianUs(byTurn: number[][]): number[] {
  return byTurn.map((ns) => Math.round(median(ns) / 1e3));
}

function growth(byTurn: number[][]): number {
  return median(byTurn.slice(40, 50).flat()) / median(byTurn.slice(0, 10).flat());
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
