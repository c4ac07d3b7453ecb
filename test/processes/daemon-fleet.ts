/**
 * Helpers for tests of several daemons over one store: each daemon's /healthz and /metrics, waiting
 * for a daemon's flush, and reading a thread from every daemon until it shows what was flushed,
 * checking meanwhile that no daemon served a copy older than the staleness bound allows.
 */
import { expect } from 'vitest';
import { type DaemonProcess, request } from './daemon-process.js';

export interface Health {
  status: string;
  store: string;
  pending: number;
  feed: { state: string; lagMs: number; possiblyStaleReads: number; doorbell?: string; reason?: string };
}

export async function health(daemon: DaemonProcess): Promise<Health> {
  return (await request(daemon, 'GET', '/healthz')).body as Health;
}

/** The value of an unlabelled series in a /metrics text, or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export async function metric(daemon: DaemonProcess, series: string): Promise<number | undefined> {
  return metricValue((await request(daemon, 'GET', '/metrics')).text, series);
}

/**
 * Resolves once everything `daemon` acknowledged is in the store (its backlog is empty), and
 * returns the time it saw that: the write was flushed at or before it.
 */
export async function flushed(daemon: DaemonProcess, timeoutMs = 10_000): Promise<number> {
  await expect.poll(async () => (await health(daemon)).pending, { timeout: timeoutMs, interval: 20 }).toBe(0);
  return Date.now();
}

/** What GET /v1/threads/:id answered: the turns' contents, or null for 404. */
export async function threadTurns(daemon: DaemonProcess, id: string): Promise<string[] | null> {
  const response = await request(daemon, 'GET', `/v1/threads/${id}`);
  if (response.status === 404) return null;
  expect(response.status, response.text).toBe(200);
  return (response.body as { turns: { content: string }[] }).turns.map((t) => t.content);
}

/**
 * Reads the thread from every daemon until each answers `expected` (null: absent), for at most
 * `timeoutMs`. Every answer must be `expected` or `previous` (what was flushed before): nothing
 * older, nothing else; and a read that began `maxStalenessMs` or more after `flushedAt` (when the
 * writer's flush was seen to be done) must be `expected`: that is the staleness bound. Returns how
 * many answers were `previous` (served from memory within the bound).
 */
export async function untilEverySees(
  daemons: DaemonProcess[],
  id: string,
  expected: string[] | null,
  previous: string[] | null,
  {
    flushedAt,
    maxStalenessMs,
    timeoutMs = 5_000,
  }: { flushedAt: number; maxStalenessMs: number; timeoutMs?: number },
): Promise<number> {
  let stale = 0;
  const violations: string[] = [];
  await Promise.all(
    daemons.map(async (daemon, d) => {
      await expect
        .poll(
          async () => {
            const began = Date.now();
            const seen = await threadTurns(daemon, id);
            const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
            if (same(seen, expected)) return seen;
            const at = `daemon ${d}, read begun ${began - flushedAt} ms after the flush, served ${JSON.stringify(seen)}`;
            if (began >= flushedAt + maxStalenessMs) violations.push(`${at}: past the bound`);
            else if (!same(seen, previous))
              violations.push(`${at}: neither the flushed nor the previous thread`);
            else stale++;
            return seen;
          },
          { timeout: timeoutMs, interval: 25 },
        )
        .toEqual(expected);
    }),
  );
  expect(violations).toEqual([]);
  return stale;
}

/**
 * A thread created on the first daemon and continued round-robin: after each acknowledged turn is
 * flushed, every daemon answers the whole thread (each turn once, in the order written) within
 * the staleness bound, having served at most the previous thread before. Returns the thread id.
 */
export async function roundRobin(
  daemons: DaemonProcess[],
  turns: number,
  maxStalenessMs: number,
): Promise<string> {
  const first = daemons[0] as DaemonProcess;
  const created = await request(first, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
  expect(created.status).toBe(201);
  const id = (created.body as { thread_id: string }).thread_id;
  let flushedAt = await flushed(first);
  await untilEverySees(daemons, id, [], null, { flushedAt, maxStalenessMs });

  const written: string[] = [];
  for (let turn = 0; turn < turns; turn++) {
    const by = daemons[turn % daemons.length] as DaemonProcess;
    const content = `turn ${turn} on daemon ${turn % daemons.length}`;
    const response = await request(by, 'POST', `/v1/threads/${id}/turns`, {
      json: { role: turn % 2 === 0 ? 'user' : 'assistant', content },
    });
    expect(response.status, response.text).toBe(201);
    // The writer answers with the whole thread, its own turn last.
    expect((response.body as { turns: { content: string }[] }).turns.map((t) => t.content)).toEqual([
      ...written,
      content,
    ]);
    const previous = [...written];
    written.push(content);
    flushedAt = await flushed(by);
    await untilEverySees(daemons, id, written, previous, { flushedAt, maxStalenessMs });
  }
  return id;
}
