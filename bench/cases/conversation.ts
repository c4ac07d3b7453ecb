import { join } from 'node:path';
import { hrtimeNow } from 'tinybench';
import { ConversationStore, createHybridCache, type Storage, type ThreadContext } from '../../src/index.js';
import { TURNS_PER_THREAD, threadTurns } from '../lib/conversation-data.js';
import { type BenchContext, collectGarbage, silentLogger, yieldToEventLoop } from '../lib/harness.js';
import type { CaseReport, Figure } from '../lib/results.js';
import { summarize } from '../lib/stats.js';
import { CountingStorage, NullStorage } from '../support/storages.js';
import { runMemoryChild } from './memory.js';

/**
 * Conversation workload: threads of 50 turns with 1–60 KB bodies through ConversationStore on a
 * hybrid cache (durability process) flushing to PostgreSQL through the gateway. Threads run
 * concurrently, each adding its turns one after another as fast as it can.
 */
export async function conversation(ctx: BenchContext): Promise<Omit<CaseReport, 'elapsedMs'>> {
  const threads = ctx.quick ? 4 : 16;
  const notes: string[] = [];
  const inner: Storage = ctx.pg ? ctx.pg.storage() : new NullStorage();
  const storage = new CountingStorage(inner);
  const cache = await createHybridCache<object>({
    storage,
    outbox: { path: join(ctx.tmpDir, 'conversation-outbox.db'), durability: 'process' },
    logger: silentLogger,
  });
  const store = new ConversationStore({ cache });
  const workloads = Array.from({ length: threads }, (_, t) => threadTurns(t));
  const turnBodyBytes = workloads.flat().reduce((sum, turn) => sum + turn.content.length, 0);

  ctx.progress.step(`${threads} threads × ${TURNS_PER_THREAD} turns, concurrently`);
  collectGarbage();
  const latencies: number[] = [];
  const ids: string[] = [];
  const started = hrtimeNow();
  await Promise.all(
    workloads.map(async (turns) => {
      const id = await store.createThread({ toolName: 'chat', initialContext: { prompt: 'benchmark' } });
      ids.push(id);
      for (const turn of turns) {
        const t0 = hrtimeNow();
        await store.addTurn(id, turn);
        latencies.push((hrtimeNow() - t0) * 1e6);
        // Turns arrive as separate requests: let the event loop run (timers, store I/O) in between.
        await yieldToEventLoop();
      }
    }),
  );
  const turnsMs = hrtimeNow() - started;
  ctx.progress.step('waiting for the flush');
  await cache.flush();
  const drainedMs = hrtimeNow() - started;
  const stats = cache.stats();

  // What one write per turn (no coalescing; also what the original plan's upsert per turn sends)
  // would have sent: the whole thread document after each change, from creation to the last turn.
  ctx.progress.step('computing bytes without coalescing');
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

  const turns = threads * TURNS_PER_THREAD;
  const sets = threads * (TURNS_PER_THREAD + 1);
  const figures: Figure[] = [
    {
      id: 'conversation.turns',
      case: 'conversation',
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
      },
    },
    {
      id: 'conversation.bytes-per-turn-uncoalesced',
      case: 'conversation',
      label: 'bytes sent to the store per turn without coalescing (one write per turn, as the original plan)',
      value: uncoalescedBytes / turns,
      unit: 'bytes',
      baseline: 'conversation.turn-body',
    },
    {
      id: 'conversation.bytes-per-turn',
      case: 'conversation',
      label: 'bytes sent to the store per turn with coalescing (measured at the store adapter)',
      value: storage.counts.valueBytes / turns,
      unit: 'bytes',
      baseline: 'conversation.bytes-per-turn-uncoalesced',
      details: {
        setCalls: sets,
        writesSent: storage.counts.writes,
        storeCalls: storage.counts.applyCalls,
        coalescedWrites: stats.coalescedWrites,
      },
    },
    {
      id: 'conversation.turn-body',
      case: 'conversation',
      label: 'mean turn body (content) size',
      value: turnBodyBytes / turns,
      unit: 'bytes',
    },
  ];

  ctx.progress.step('memory per thread (child process)');
  const memoryThreads = ctx.quick ? 2 : 8;
  const perThread = (await runMemoryChild({ entries: 0, threads: memoryThreads })).perThread;
  if (perThread) {
    figures.push(
      {
        id: 'conversation.memory-per-thread',
        case: 'conversation',
        label: 'heap per 50-turn thread, flushed, as left by addTurn',
        value: perThread.hybrid,
        unit: 'bytes',
        baseline: 'conversation.thread-json',
      },
      {
        id: 'conversation.memory-per-thread-parsed',
        case: 'conversation',
        label: 'heap per 50-turn thread after one getThread (parsed object kept)',
        value: perThread.hybridParsed,
        unit: 'bytes',
        baseline: 'conversation.thread-json',
      },
      {
        id: 'conversation.thread-json',
        case: 'conversation',
        label: 'serialized size of one 50-turn thread (JSON)',
        value: perThread.threadJsonBytes,
        unit: 'bytes',
      },
    );
    notes.push(
      `Memory per thread measured on ${memoryThreads} threads in a fresh \`node --expose-gc\` process.`,
    );
  }

  notes.push(
    `Store: ${ctx.pg ? 'SupabaseStorage through the test gateway' : `a no-op store (${ctx.pgUnavailable})`}; outbox durability process; default flush settings (batch 200, interval 20 ms).`,
    'Each turn rewrites the whole thread document (the wire format of the original daemon), so bytes per write grow with the thread: without coalescing a 50-turn thread sends about 25× its final size over its life. Coalescing helps only when turns of a thread arrive faster than the flush (20 ms interval plus the store round trip), as in this back-to-back run; with human-paced turns (seconds apart) every turn is one full-document write.',
    'Each thread yields to the event loop between turns, as separate requests would, so the flusher runs between turns.',
    'Turn latency includes ConversationStore validation (zod) of the whole thread on every read-modify-write, which also grows with the thread.',
  );
  return {
    id: 'conversation',
    title: 'Conversation workload',
    method: `${threads} threads of ${TURNS_PER_THREAD} turns each (bodies uniformly 1–60 KB, alternating user/assistant) added through ConversationStore.addTurn, threads in parallel, turns of a thread one after another.`,
    figures,
    notes,
  };
}
