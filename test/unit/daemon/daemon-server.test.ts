import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import {
  BackpressureError,
  ClosedError,
  OutboxError,
  StorageUnavailableError,
  ValidationError,
} from '../../../src/cache/errors.js';
import type { HybridCache } from '../../../src/cache/hybrid-cache.js';
import type { CacheStats } from '../../../src/cache/types.js';
import { loadConfig } from '../../../src/config/load-config.js';
import type { ConversationStore } from '../../../src/conversation/conversation-store.js';
import { tokensMatch } from '../../../src/daemon/auth.js';
import { createLogger } from '../../../src/daemon/logger.js';
import { buildServer } from '../../../src/daemon/server.js';

const STATS: CacheStats = {
  hits: 3,
  misses: 1,
  loads: 1,
  pending: 2,
  pendingBytes: 300,
  oldestPendingAgeMs: 1500,
  flushedWrites: 9,
  coalescedWrites: 4,
  retries: 6,
  deadLetters: 1,
  superseded: 0,
  health: 'degraded',
  outboxWritable: true,
  outboxHeals: 2,
  clockAnchored: false,
  clockAheadMs: 2500,
  clockReadingsDistrusted: 3,
  evictions: 5,
  entries: 7,
  bytes: 800,
  feedState: 'behind',
  feedChanges: 11,
  feedDrops: 8,
  feedResets: 1,
  feedLagMs: 1700,
  doorbell: 'listening',
  revalidations: 12,
  possiblyStaleReads: 13,
};

function server(
  options: {
    stats?: Partial<CacheStats>;
    outboxError?: Error;
    closing?: boolean;
    conversations?: Partial<ConversationStore>;
    env?: Record<string, string>;
  } = {},
) {
  const cache = {
    stats: () => ({ ...STATS, ...options.stats }),
    isOpen: true,
    outboxError: options.outboxError,
  } as unknown as HybridCache;
  const conversations = (options.conversations ?? {}) as ConversationStore;
  const { config } = loadConfig(options.env ?? {}, '/srv');
  return buildServer({
    config,
    wired: { cache, conversations },
    logger: pino({ level: 'silent' }),
    isClosing: () => options.closing ?? false,
  });
}

describe('GET /healthz', () => {
  it('is 200 with the store state and backlog while writes are accepted, even with the store degraded', async () => {
    const response = await server({
      stats: { clockAheadMs: 0, feedState: 'following', feedLagMs: 40 },
    }).inject({
      method: 'GET',
      url: '/healthz',
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      status: 'ok',
      store: 'degraded',
      backend: 'sqlite',
      pending: 2,
      pendingBytes: 300,
      oldestPendingAgeMs: 1500,
      deadLetters: 1,
      outboxWritable: true,
      outboxHeals: 2,
      clockAheadMs: 0,
      feed: { state: 'following', lagMs: 40, doorbell: 'listening', possiblyStaleReads: 13 },
    });
  });

  it('is 200 and says why when the doorbell cannot hear', async () => {
    const response = await server({
      stats: { feedState: 'following', feedLagMs: 40, doorbell: 'broken' },
    }).inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json().feed).toEqual({
      state: 'following',
      lagMs: 40,
      doorbell: 'broken',
      possiblyStaleReads: 13,
      reason: expect.stringContaining('transaction-mode pooler'),
    });
  });

  it("is 200 and says why when other instances' changes are not being followed", async () => {
    const response = await server().inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json().feed).toEqual({
      state: 'behind',
      lagMs: 1700,
      doorbell: 'listening',
      possiblyStaleReads: 13,
      reason: expect.stringContaining('have not been read for 1700 ms'),
    });
  });

  it('is 200 with a warning naming how far ahead the wall clock runs while it is not trusted', async () => {
    const response = await server().inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      status: 'ok',
      clockAheadMs: 2500,
      warning: expect.stringContaining('the wall clock runs 2500 ms ahead'),
    });
  });

  it('is 503 naming the cause when the outbox cannot be written', async () => {
    const app = server({
      stats: { outboxWritable: false },
      outboxError: new Error('SQLITE_FULL: disk is full'),
    });
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({
      status: 'unavailable',
      reason: 'the local outbox cannot be written: SQLITE_FULL: disk is full',
      outboxWritable: false,
    });
  });

  it('is 503 while the daemon is closing', async () => {
    const response = await server({ closing: true }).inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({ status: 'unavailable', reason: 'the daemon is shutting down' });
  });
});

describe('GET /metrics', () => {
  it('exports each stats field with its value at scrape time', async () => {
    const { body } = await server().inject({ method: 'GET', url: '/metrics' });
    const expected: Record<string, number> = {
      hybrid_cache_hits_total: 3,
      hybrid_cache_misses_total: 1,
      hybrid_cache_loads_total: 1,
      hybrid_cache_pending_writes: 2,
      hybrid_cache_pending_bytes: 300,
      hybrid_cache_oldest_pending_age_seconds: 1.5,
      hybrid_cache_flushed_writes_total: 9,
      hybrid_cache_coalesced_writes_total: 4,
      hybrid_cache_retries_total: 6,
      hybrid_cache_dead_letters: 1,
      hybrid_cache_evictions_total: 5,
      hybrid_cache_entries: 7,
      hybrid_cache_bytes: 800,
      hybrid_cache_outbox_writable: 1,
      hybrid_cache_outbox_heals_total: 2,
      hybrid_cache_clock_anchored: 0,
      hybrid_cache_clock_ahead_seconds: 2.5,
      hybrid_cache_clock_readings_distrusted_total: 3,
      hybrid_cache_feed_changes_total: 11,
      hybrid_cache_feed_dropped_entries_total: 8,
      hybrid_cache_feed_resets_total: 1,
      hybrid_cache_feed_lag_seconds: 1.7,
      hybrid_cache_revalidated_reads_total: 12,
      hybrid_cache_possibly_stale_reads_total: 13,
      'hybrid_cache_feed_state{state="behind"}': 1,
      'hybrid_cache_feed_state{state="following"}': 0,
      'hybrid_cache_doorbell_state{state="listening"}': 1,
      'hybrid_cache_doorbell_state{state="broken"}': 0,
      'hybrid_cache_store_health{state="healthy"}': 0,
      'hybrid_cache_store_health{state="degraded"}': 1,
      'hybrid_cache_store_health{state="offline"}': 0,
    };
    for (const [series, value] of Object.entries(expected)) {
      expect(body.split('\n'), series).toContain(`${series} ${value}`);
    }
  });
});

describe('connection deadlines and limit', () => {
  it('gives the Node server every configured deadline and the connection limit', () => {
    const { server: node } = server({
      env: {
        DAEMON_HEADERS_TIMEOUT_MS: '1234',
        DAEMON_REQUEST_TIMEOUT_MS: '5678',
        DAEMON_KEEP_ALIVE_TIMEOUT_MS: '910',
        DAEMON_CONNECTION_TIMEOUT_MS: '11121',
        DAEMON_MAX_CONNECTIONS: '77',
      },
    });
    expect(node).toMatchObject({
      headersTimeout: 1234,
      requestTimeout: 5678,
      keepAliveTimeout: 910,
      timeout: 11121,
      maxConnections: 77,
    });
  });

  it('has finite deadlines and a limit by default', () => {
    const { server: node } = server();
    expect(node).toMatchObject({
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      keepAliveTimeout: 5_000,
      timeout: 60_000,
      maxConnections: 1_000,
    });
  });
});

describe('request bodies', () => {
  it('refuses a body thousands of levels deep with 400 naming the limit, before anything is created', async () => {
    let created = 0;
    const app = server({
      conversations: {
        createThread: async () => {
          created++;
          return randomUUID();
        },
      },
    });
    const depth = 4_109;
    const response = await app.inject({
      method: 'POST',
      url: '/v1/threads',
      headers: { 'content-type': 'application/json' },
      payload: `{"tool_name":"chat","initial_context":{"a":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}}`,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: 'body_too_deep',
      message:
        'request body nests objects and arrays more than 64 levels deep (the limit, counting the body as level 1)',
    });
    expect(created).toBe(0);
  });
});

describe('error mapping', () => {
  const id = randomUUID();
  const failing = (error: Error) =>
    server({
      conversations: {
        getThread: async () => {
          throw error;
        },
      },
    }).inject({ method: 'GET', url: `/v1/threads/${id}` });

  it.each([
    [new BackpressureError('backlog full', 10, 10), 503, 'backpressure', '1', 'backlog full'],
    [new StorageUnavailableError('breaker open'), 503, 'storage_unavailable', '5', 'unreachable'],
    [new ClosedError(), 503, 'closing', undefined, 'shutting down'],
    [new OutboxError('disk full'), 503, 'outbox_unwritable', undefined, 'disk full'],
    [new ValidationError('value too large'), 400, 'invalid_value', undefined, 'value too large'],
  ] as const)('%s -> %i %s', async (error, status, code, retryAfter, mentions) => {
    const response = await failing(error);
    expect(response.statusCode).toBe(status);
    expect(response.json()).toMatchObject({ error: code, message: expect.stringContaining(mentions) });
    expect(response.headers['retry-after']).toBe(retryAfter);
  });

  it('hides unexpected errors behind a generic 500', async () => {
    const response = await failing(new Error('secret internals'));
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: 'internal', message: 'internal error; see the daemon log' });
  });
});

describe('secrets', () => {
  it('compares tokens exactly, whatever their lengths', () => {
    expect(tokensMatch('a-token-of-16-chars', 'a-token-of-16-chars')).toBe(true);
    expect(tokensMatch('a-token-of-16-charX', 'a-token-of-16-chars')).toBe(false);
    expect(tokensMatch('a-token', 'a-token-of-16-chars')).toBe(false);
    expect(tokensMatch('', 'a-token-of-16-chars')).toBe(false);
  });

  it('redacts keys, tokens and authorization headers from logs', () => {
    let out = '';
    const sink = new Writable({
      write(chunk, _encoding, done) {
        out += String(chunk);
        done();
      },
    });
    const logger = createLogger('info', sink);
    logger.info({ req: { headers: { authorization: 'Bearer tok-123' } } }, 'request');
    logger.info({ SUPABASE_KEY: 'sk-456', DAEMON_TOKEN: 'tok-789' }, 'env');
    logger.info({
      config: { storage: { supabase: { url: 'https://x', key: 'sk-abc' } }, daemon: { token: 'tok-def' } },
    });
    logger.info({ supabase: { key: 'sk-ghi' }, token: 'tok-jkl' });
    logger.info({ DATABASE_URL: 'postgres://u:pw-1@h/db', env: { DATABASE_URL: 'postgres://u:pw-2@h/db' } });
    logger.info({ config: { storage: { postgres: { connectionString: 'postgres://u:pw-3@h/db' } } } });
    const secrets = [
      'tok-123',
      'sk-456',
      'tok-789',
      'sk-abc',
      'tok-def',
      'sk-ghi',
      'tok-jkl',
      'pw-1',
      'pw-2',
      'pw-3',
    ];
    for (const secret of secrets) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain('[redacted]');
    expect(out).toContain('https://x');
  });
});
