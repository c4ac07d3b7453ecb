import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/storage/postgres/migrate.js';
import {
  flushed,
  health,
  metric,
  roundRobin,
  threadTurns,
  untilEverySees,
} from '../processes/daemon-fleet.js';
import { type DaemonProcess, request, startDaemon, tempWorkDir } from '../processes/daemon-process.js';
import { connectionUrl, createDatabase } from '../support/plain-postgres.js';
import type { PostgresConnectionInfo } from '../support/postgres.js';
import { PostgresCluster } from '../support/postgres.js';

/**
 * Three daemons (real processes, backend postgres, each its own CACHE_DATA_DIR) on one database,
 * following each other through the change feed and the LISTEN/NOTIFY doorbell.
 *
 * A cluster of its own: the feed's safe position follows the cluster-wide xmin, so a transaction
 * another test file holds open in the shared cluster would hold back what these daemons wait for,
 * and the last test here holds one open on purpose.
 */
const MAX_STALENESS_MS = 300;
const FEED_POLL_INTERVAL_MS = 50;

let cluster: PostgresCluster;
let db: PostgresConnectionInfo;
let url: string;
const works = [tempWorkDir(), tempWorkDir(), tempWorkDir()];
let daemons: DaemonProcess[] = [];
/** Whether the third daemon still runs with its minute-long flush interval (the first test restarts it without). */
let slowThird = true;

function daemonEnv(over: Record<string, string> = {}): Record<string, string> {
  return {
    CONVERSATION_STORAGE_BACKEND: 'postgres',
    CONVERSATION_STORAGE_STRICT: 'true',
    DATABASE_URL: url,
    CACHE_FLUSH_INTERVAL_MS: '5',
    CACHE_FEED_POLL_INTERVAL_MS: String(FEED_POLL_INTERVAL_MS),
    CACHE_MAX_STALENESS_MS: String(MAX_STALENESS_MS),
    DAEMON_SHUTDOWN_TIMEOUT_MS: '500',
    ...over,
  };
}

beforeAll(async () => {
  cluster = await PostgresCluster.create();
  db = await createDatabase(cluster.info, 'fleet');
  url = connectionUrl(db);
  await migrate({ connectionString: url, max: 1 });
  daemons = await Promise.all(
    works.map((work, d) =>
      // The third daemon is the one killed: until then it sends its writes to the store only a
      // minute after acknowledging them, so that the kill finds them in its outbox only.
      startDaemon(work.dir, daemonEnv(d === 2 ? { CACHE_FLUSH_INTERVAL_MS: '60000' } : {})),
    ),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
  await cluster?.destroy();
  for (const work of works) work.cleanup();
});

async function withClient<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await cluster.connect(db.database);
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** The thread's turns as the database holds them (each stored turn once), or null when absent or deleted. */
function storedTurns(id: string): Promise<string[] | null> {
  return withClient(async (client) => {
    const { rows } = await client.query<{ data: { turns: { content: string }[] } }>(
      'select conversation_data as data from conversation_threads_with_turns where thread_id = $1 and not deleted',
      [`thread:${id}`],
    );
    return rows[0]?.data.turns.map((turn) => turn.content) ?? null;
  });
}

/** Appends a turn through `daemon` and checks its answer: the whole thread, its own turn last. */
async function addTurn(daemon: DaemonProcess, id: string, written: string[], content: string): Promise<void> {
  const response = await request(daemon, 'POST', `/v1/threads/${id}/turns`, {
    json: { role: written.length % 2 === 0 ? 'user' : 'assistant', content },
  });
  expect(response.status, response.text).toBe(201);
  expect((response.body as { turns: { content: string }[] }).turns.map((t) => t.content)).toEqual([
    ...written,
    content,
  ]);
}

const doorbellState = (text: string, state: string) =>
  text
    .split('\n')
    .find((line) => line.startsWith(`hybrid_cache_doorbell_state{state="${state}"} `))
    ?.endsWith(' 1');

/**
 * The fleet as the later tests need it (each may run alone): every daemon flushing promptly, and
 * every doorbell listening.
 */
async function fleetReady(): Promise<void> {
  if (slowThird) {
    await (daemons[2] as DaemonProcess).stop('SIGTERM');
    daemons[2] = await startDaemon((works[2] as { dir: string }).dir, daemonEnv());
    slowThird = false;
  }
  await everyDoorbellListening();
}

async function everyDoorbellListening(): Promise<void> {
  await expect
    .poll(async () => Promise.all(daemons.map(async (d) => (await health(d)).feed.doorbell)), {
      timeout: 15_000,
      interval: 50,
    })
    .toEqual(['listening', 'listening', 'listening']);
}

describe('three daemons on one PostgreSQL database (real processes)', () => {
  it('a thread written round-robin is whole on every daemon within the bound after each flush, across a kill -9 and restart of one daemon', async () => {
    await everyDoorbellListening();
    const [a] = daemons as [DaemonProcess, DaemonProcess, DaemonProcess];
    const created = await request(a, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    expect(created.status).toBe(201);
    const id = (created.body as { thread_id: string }).thread_id;
    let flushedAt = await flushed(a);
    await untilEverySees(daemons, id, [], null, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });

    const TURNS = 9;
    const KILL_AT = 2; // written on the third daemon
    const written: string[] = [];
    for (let turn = 0; turn < TURNS; turn++) {
      const d = turn % 3;
      const content = `turn ${turn} on daemon ${d}`;
      await addTurn(daemons[d] as DaemonProcess, id, written, content);
      const previous = [...written];
      written.push(content);
      if (turn === KILL_AT) {
        // Acknowledged, not yet in the store: it is in this daemon's outbox only.
        const victim = daemons[d] as DaemonProcess;
        expect((await health(victim)).pending).toBeGreaterThan(0);
        expect(await storedTurns(id)).toEqual(previous);
        expect(await victim.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
        // The others still serve what was flushed: the unflushed turn is nowhere but in the outbox.
        for (const other of daemons.filter((x) => x !== victim))
          expect(await threadTurns(other, id)).toEqual(previous);
        // Restarted on its data dir (flushing promptly now): its outbox replays the turn.
        daemons[d] = await startDaemon((works[d] as { dir: string }).dir, daemonEnv());
        slowThird = false;
        expect(
          daemons[d]?.logs.find((line) => line.msg === 'replayed unflushed writes from the outbox'),
        ).toMatchObject({
          replayed: 1,
        });
      }
      flushedAt = await flushed(daemons[d] as DaemonProcess);
      await untilEverySees(daemons, id, written, previous, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });
    }
    // Each turn once, in the order written, in the database too.
    expect(await storedTurns(id)).toEqual(written);
    for (const daemon of daemons) {
      expect((await health(daemon)).feed).toMatchObject({ state: 'following', possiblyStaleReads: 0 });
    }
  }, 55_000);

  it('the doorbell cut (its listening connection terminated, again and again) while writes go on: the bound holds, /metrics shows the gap, it reconnects', async () => {
    await fleetReady();
    const broken = new Set<number>();
    let writing = true;
    let stopped = false;
    let cuts = 0;
    // Cuts every listening connection that has heard itself (its last query the self-notification,
    // done), for as long as the writes go on and until each daemon's /metrics showed the gap. Only
    // those: cutting one still connecting would lengthen its backoff (reset once it hears itself).
    const cutter = (async () => {
      const admin = await cluster.connect(db.database);
      try {
        while (!stopped && (writing || broken.size < 3)) {
          const { rowCount } = await admin.query(
            `select pg_terminate_backend(pid) from pg_stat_activity
              where application_name = 'hybrid-cache doorbell' and datname = current_database()
                and state = 'idle' and query like 'SELECT pg_notify%'`,
          );
          cuts += rowCount ?? 0;
          // Scraped right after the cut: the doorbell is waiting out its backoff, or reconnecting.
          await Promise.all(
            daemons.map(async (daemon, d) => {
              const text = (await request(daemon, 'GET', '/metrics')).text;
              if (doorbellState(text, 'connecting') || doorbellState(text, 'broken')) broken.add(d);
            }),
          );
        }
      } finally {
        await admin.end();
      }
    })();
    try {
      // Writes go on meanwhile; after each flush every daemon has the whole thread within the
      // bound (the feed's poll, not the doorbell, is what bounds staleness).
      await roundRobin(daemons, 6, MAX_STALENESS_MS);
      writing = false;
      await expect.poll(() => broken.size, { timeout: 20_000, interval: 50 }).toBe(3);
    } finally {
      stopped = true;
      await cutter;
    }
    expect(cuts).toBeGreaterThanOrEqual(3);
    for (const daemon of daemons) {
      expect(
        daemon.logs.some((line) => line.msg === 'doorbell connection failed or lost: reconnecting'),
      ).toBe(true);
    }
    // Reconnected: the metrics say so, and the fleet converges as before.
    await everyDoorbellListening();
    for (const daemon of daemons) {
      const text = (await request(daemon, 'GET', '/metrics')).text;
      expect(doorbellState(text, 'listening')).toBe(true);
    }
    await roundRobin(daemons, 3, MAX_STALENESS_MS);
  }, 55_000);

  it('a long open writing transaction elsewhere: later commits still reach every daemon within the bound, and its own change is delivered when it commits', async () => {
    await fleetReady();
    const [a, b] = daemons as [DaemonProcess, DaemonProcess, DaemonProcess];
    // A thread the open transaction will delete.
    const created = await request(a, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const doomed = (created.body as { thread_id: string }).thread_id;
    // Write-behind: another daemon knows the thread once its creation is in the store.
    await untilEverySees(daemons, doomed, [], null, {
      flushedAt: await flushed(a),
      maxStalenessMs: MAX_STALENESS_MS,
    });
    const doomedTurns: string[] = [];
    await addTurn(b, doomed, doomedTurns, 'doomed turn');
    doomedTurns.push('doomed turn');
    let flushedAt = await flushed(b);
    await untilEverySees(daemons, doomed, doomedTurns, null, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });

    const raw = await cluster.connect(db.database);
    try {
      await raw.query('begin');
      // A tombstone one version above the stored one, through the table's apply function: the
      // transaction takes an xid, and holds back the cluster's xmin until it ends.
      const { rows } = await raw.query<{ outcome: string }>(
        `select a.outcome from conversation_threads t,
           public.apply_conversation_threads(jsonb_build_array(jsonb_build_object(
             'thread_id', t.thread_id, 'version', t.version + 1, 'data', null))) a
          where t.thread_id = $1`,
        [`thread:${doomed}`],
      );
      expect(rows).toEqual([{ outcome: 'applied' }]);
      const { rows: xid } = await raw.query<{ xid: string | null }>(
        'select pg_current_xact_id_if_assigned()::text as xid',
      );
      expect(xid[0]?.xid).not.toBeNull();

      // Later commits (a thread round-robin) reach every daemon within the bound all the same.
      const later = await roundRobin(daemons, 6, MAX_STALENESS_MS);
      expect(await storedTurns(later)).toHaveLength(6);
      // The uncommitted delete is seen nowhere.
      for (const daemon of daemons) expect(await threadTurns(daemon, doomed)).toEqual(doomedTurns);

      // The feed's safe position is held back: with nothing written, every poll delivers the
      // changes committed above xmin again (the thread's creation and its six turns, at least
      // seven a poll): hybrid_cache_feed_changes_total keeps growing, by far more than a last
      // change or two still on its way could explain. Each read still reaches the feed's end, so
      // the daemons stay following, their lag within the bound.
      for (const daemon of daemons) {
        const before = (await metric(daemon, 'hybrid_cache_feed_changes_total')) as number;
        await expect
          .poll(async () => metric(daemon, 'hybrid_cache_feed_changes_total'), {
            timeout: 10_000,
            interval: 20,
          })
          .toBeGreaterThanOrEqual(before + 21);
        const feed = (await health(daemon)).feed;
        expect(feed.state).toBe('following');
        expect(feed.lagMs).toBeLessThan(MAX_STALENESS_MS);
      }

      await raw.query('commit');
      flushedAt = Date.now();
    } finally {
      await raw.end();
    }
    // Committed: the delete reaches every daemon within the bound.
    await untilEverySees(daemons, doomed, null, doomedTurns, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });
    expect(await storedTurns(doomed)).toBeNull();

    // Nothing holds the safe position back any more: it passes every change, and the polls stop
    // delivering them again (the counter holds still across 250 ms, five polls, on every daemon).
    let last: Array<number | undefined> = [];
    await expect
      .poll(
        async () => {
          const now = await Promise.all(daemons.map((d) => metric(d, 'hybrid_cache_feed_changes_total')));
          const still = JSON.stringify(now) === JSON.stringify(last);
          last = now;
          return still;
        },
        { timeout: 10_000, interval: 250 },
      )
      .toBe(true);
  }, 55_000);
});
