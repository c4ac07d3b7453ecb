/**
 * `node --import tsx --expose-gc /path/to/bench/turn-cpu.ts [passes]`, run from a checkout's root:
 * this process's CPU time (user + system) per `ConversationStore.addTurn`, 16 threads of 50 turns
 * (1-60 KB bodies) concurrently, outbox durability 'process', flushed to a store that keeps
 * nothing (NullStorage), so the figure is the engine's own work. One line of JSON per run: µs per
 * turn for each pass (drop the first, a warm-up).
 *
 * CPU time is what a busy machine disturbs least, so it can tell two engines apart where latency
 * cannot. It imports the checkout it runs in (`process.cwd()`), so the same script measures an
 * older commit too: `cd OLD && node --import tsx --expose-gc NEW/bench/turn-cpu.ts`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';

const from = (path: string) => import(pathToFileURL(resolve(process.cwd(), path)).href);
const root = await from('src/index.ts');
// Older checkouts export the conversation domain from the root entry point.
const conversation = root.ConversationStore ? root : await from('src/conversation/index.ts');
const { NullStorage } = await from('bench/support/storages.ts');
const { threadTurns } = await from('bench/lib/data.ts');

const passes = Number(process.argv[2] ?? 6);
const perTurnUs: number[] = [];
for (let pass = 0; pass < passes; pass++) {
  const dir = mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'turn-cpu-'));
  const cache = await root.createHybridCache({
    storage: new NullStorage(),
    outbox: { path: join(dir, 'outbox.db'), durability: 'process' },
    logger: pino({ level: 'silent' }),
  });
  const store = new conversation.ConversationStore({ cache });
  const workloads: unknown[][] = Array.from({ length: 16 }, (_, t) => threadTurns(t));
  globalThis.gc?.();
  const before = process.cpuUsage();
  await Promise.all(
    workloads.map(async (turns) => {
      const id = await store.createThread({ tool_name: 'chat', initial_context: { prompt: 'benchmark' } });
      for (const turn of turns) await store.addTurn(id, turn);
    }),
  );
  await cache.flush();
  const used = process.cpuUsage(before);
  const turns = workloads.reduce((sum, w) => sum + w.length, 0);
  perTurnUs.push(Number(((used.user + used.system) / turns).toFixed(1)));
  await cache.close();
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(perTurnUs)}\n`);
