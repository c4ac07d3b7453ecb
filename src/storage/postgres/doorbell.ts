import { randomUUID } from 'node:crypto';
import { ExponentialBackoff, fullJitterGenerator, type IBackoff } from 'cockatiel';
import type pg from 'pg';
import type { Logger } from 'pino';
import { StorageConfigurationError } from '../contract/errors.js';
import type { DoorbellRing, DoorbellState } from '../contract/types.js';
import { classifyPgError } from './postgres-errors.js';
import { readRing } from './ringer.js';

/** The channel every hybrid-cache writer rings and every doorbell listens on, unless configured. */
export const DEFAULT_DOORBELL_CHANNEL = 'hybrid_cache';

export interface PostgresDoorbellOptions {
  /** The LISTEN/NOTIFY channel. Default `hybrid_cache`; writers and listeners must agree. */
  channel?: string;
  /**
   * How often the listening connection proves it still hears: it notifies itself and expects the
   * notification back within `probeTimeoutMs`. Default 10 s.
   */
  heartbeatMs?: number;
  /** How long a notification to itself may take to come back. Default 5 s. */
  probeTimeoutMs?: number;
  /** Waits between reconnection attempts: exponential with full jitter. Default 250 ms to 30 s. */
  backoff?: { baseMs?: number; maxMs?: number };
}

/** What a doorbell needs from the store that owns it. */
export interface DoorbellSetup extends PostgresDoorbellOptions {
  /**
   * A new, dedicated connection, not yet connected (never one from a pool: it stays LISTENing).
   * May load pg lazily, so that a store that never listens never loads it.
   */
  client: () => pg.Client | Promise<pg.Client>;
  /** This store's table as writers name it in a ring (`<schema>.<table>`, see `ringPayload`). */
  topic: string;
  /** Removes the connection's password from a text. */
  redact: (text: string) => string;
  logger: Logger;
}

/** Where a doorbell stands, for metrics. */
export interface DoorbellStats {
  state: DoorbellState;
  /** Rings handed to listeners: notifications for this table, and one per (re)connection. */
  rings: number;
  /** Connections lost or refused since the first. */
  reconnects: number;
  /** When (epoch ms) the listening connection last heard itself; undefined before. */
  lastHeartbeatAt: number | undefined;
}

/** The listening connection did not hear its own notification in time. */
class NotHeard extends Error {}

/**
 * Listens for the doorbell writers ring (`NOTIFY <channel>, '<schema>.<table>[ <origin>]'`) on a
 * dedicated connection and rings its listeners (with the writers' origin when the ring names one),
 * so that followers read the change feed at once rather than at their next poll. The feed stays
 * the truth: a missed ring only costs latency, which is why every (re)connection rings once (the
 * follower catches up on what was missed meanwhile).
 *
 * A listening connection can die silently (a NAT or a pooler dropping it), and LISTEN through a
 * transaction-mode pooler (Supavisor port 6543, PgBouncer `pool_mode=transaction`) is accepted
 * but never delivers. Both are caught the same way: the connection notifies itself after LISTEN
 * and every `heartbeatMs`, and a notification that does not come back means it is not listening.
 */
export class PostgresDoorbell {
  readonly #setup: DoorbellSetup;
  readonly #channel: string;
  /** A channel of its own for the self-notifications, so that they wake no other listener. */
  readonly #probeChannel = `hybrid_cache_probe_${randomUUID().replaceAll('-', '')}`;
  readonly #listeners = new Set<(ring: DoorbellRing) => void>();
  readonly #probes = new Map<string, () => void>();
  readonly #first: ExponentialBackoff<unknown>;
  #run: { stop: AbortController; done: Promise<void> } | undefined;
  #state: DoorbellState = 'off';
  #rings = 0;
  #reconnects = 0;
  #lastHeartbeatAt: number | undefined;

  constructor(setup: DoorbellSetup) {
    this.#setup = setup;
    this.#channel = setup.channel ?? DEFAULT_DOORBELL_CHANNEL;
    this.#first = new ExponentialBackoff({
      initialDelay: setup.backoff?.baseMs ?? 250,
      maxDelay: setup.backoff?.maxMs ?? 30_000,
      generator: fullJitterGenerator,
    });
  }

  get state(): DoorbellState {
    return this.#state;
  }

  stats(): DoorbellStats {
    return {
      state: this.#state,
      rings: this.#rings,
      reconnects: this.#reconnects,
      lastHeartbeatAt: this.#lastHeartbeatAt,
    };
  }

  /** Rings `listener` from now on; listening starts with the first. Returns the unsubscribe. */
  subscribe(listener: (ring: DoorbellRing) => void): () => void {
    const wrapped = (ring: DoorbellRing) => listener(ring);
    this.#listeners.add(wrapped);
    if (!this.#run) {
      const stop = new AbortController();
      this.#run = { stop, done: this.#loop(stop.signal) };
    }
    return () => {
      this.#listeners.delete(wrapped);
      if (this.#listeners.size === 0) void this.close();
    };
  }

  /** Stops listening and closes the connection; a later subscribe listens again. */
  async close(): Promise<void> {
    const run = this.#run;
    if (!run) return;
    this.#run = undefined;
    run.stop.abort();
    await run.done;
  }

  async #loop(signal: AbortSignal): Promise<void> {
    let backoff: IBackoff<unknown> | undefined;
    while (!signal.aborted) {
      if (this.#state !== 'broken') this.#state = 'connecting';
      let client: pg.Client | undefined;
      let heard = false;
      try {
        client = await this.#setup.client();
        // After the end too: a late socket error must never become an uncaught exception.
        client.on('error', () => {});
        const lost = connectionLost(client);
        await abortable(client.connect(), signal, lost);
        client.on('notification', (message) => this.#heard(message));
        await abortable(client.query(`LISTEN ${identifier(this.#probeChannel)}`), signal, lost);
        await abortable(client.query(`LISTEN ${identifier(this.#channel)}`), signal, lost);
        await this.#probe(client, signal, lost);
        heard = true;
        backoff = undefined;
        this.#state = 'listening';
        this.#setup.logger.info({ channel: this.#channel }, 'doorbell listening for changes');
        // Whatever was rung while this connection was not listening: the follower reads the feed.
        this.#ring({});
        for (;;) {
          await abortable(delay(this.#setup.heartbeatMs ?? 10_000), signal, lost);
          await this.#probe(client, signal, lost);
        }
      } catch (error) {
        if (signal.aborted) break;
        this.#report(error, heard);
      } finally {
        client?.removeAllListeners('notification');
        void client?.end().catch(() => {});
      }
      this.#reconnects++;
      backoff = (backoff ?? this.#first).next(undefined);
      await abortable(delay(backoff.duration), signal).catch(() => {});
    }
    // Unless a new subscriber started listening again meanwhile.
    if (!this.#run) this.#state = 'off';
  }

  /** Notifies itself on its probe channel; rejects with `NotHeard` unless it comes back in time. */
  async #probe(client: pg.Client, signal: AbortSignal, lost: Promise<never>): Promise<void> {
    const payload = randomUUID();
    const back = new Promise<void>((resolve) => this.#probes.set(payload, resolve));
    const timeoutMs = this.#setup.probeTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NotHeard(`not heard back within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await abortable(
        Promise.all([client.query('SELECT pg_notify($1, $2)', [this.#probeChannel, payload]), back]),
        signal,
        Promise.race([lost, late]),
      );
      this.#lastHeartbeatAt = Date.now();
    } finally {
      clearTimeout(timer);
      this.#probes.delete(payload);
    }
  }

  #heard(message: pg.Notification): void {
    if (message.channel === this.#probeChannel) {
      this.#probes.get(message.payload ?? '')?.();
      return;
    }
    const ring = message.channel === this.#channel ? readRing(message.payload, this.#setup.topic) : undefined;
    if (ring) this.#ring(ring);
  }

  #ring(ring: DoorbellRing): void {
    this.#rings++;
    // One ring for every listener: none may change what the next one reads.
    Object.freeze(ring);
    for (const listener of this.#listeners) {
      try {
        listener(ring);
      } catch (error) {
        this.#setup.logger.warn({ err: error }, 'a doorbell listener threw');
      }
    }
  }

  /** Says why listening stopped; never silent, and never with the password. */
  #report(error: unknown, heard: boolean): void {
    const reason = this.#setup.redact(error instanceof Error ? error.message : String(error));
    const { logger } = this.#setup;
    if (error instanceof NotHeard && !heard) {
      this.#state = 'broken';
      logger.error(
        { channel: this.#channel, reason },
        'doorbell broken: LISTEN was accepted but this connection never hears its own NOTIFY. A transaction-mode pooler (Supavisor port 6543, PgBouncer pool_mode=transaction) does this: listen through a session-mode (port 5432) or direct connection. Changes from other instances are still read from the feed, at its poll interval',
      );
      return;
    }
    if (error instanceof NotHeard) {
      this.#state = 'connecting';
      logger.warn({ channel: this.#channel, reason }, 'doorbell heartbeat not heard back: reconnecting');
      return;
    }
    const failure = classifyPgError('listening', error, this.#setup.redact);
    if (failure instanceof StorageConfigurationError) {
      // Credentials, a database or TLS settings the server refuses: waiting alone will not mend it.
      this.#state = 'broken';
      logger.error(
        { channel: this.#channel, reason },
        `doorbell cannot connect: ${failure.message} Changes from other instances are still read from the feed, at its poll interval; trying again`,
      );
      return;
    }
    if (this.#state !== 'broken') this.#state = 'connecting';
    logger.warn({ channel: this.#channel, reason }, 'doorbell connection failed or lost: reconnecting');
  }
}

/** Rejects when the connection errors or ends; never resolves. */
function connectionLost(client: pg.Client): Promise<never> {
  const lost = new Promise<never>((_, reject) => {
    client.once('error', reject);
    client.once('end', () => reject(new Error('the listening connection ended')));
  });
  lost.catch(() => {});
  return lost;
}

/** `promise`, unless the signal aborts or `failed` rejects first. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal, failed?: Promise<never>): Promise<T> {
  promise.catch(() => {});
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => signal.removeEventListener('abort', onAbort);
    Promise.race(failed ? [promise, failed] : [promise]).then(
      (value) => {
        done();
        resolve(value);
      },
      (error: unknown) => {
        done();
        reject(error);
      },
    );
  });
}

/** A quoted SQL identifier (pg's escapeIdentifier, without loading pg). */
function identifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
