import { z } from 'zod';
import {
  CACHE_OPTION_DEFAULTS as CACHE,
  DURABILITIES,
  ENTRY_HEADROOM_BYTES,
} from '../cache/option-defaults.js';
import { DEFAULT_MAX_TURNS, DEFAULT_TIMEOUT_HOURS } from '../conversation/option-defaults.js';

/**
 * Every environment variable the daemon reads: its default, what it accepts and what it means.
 * `.env.example` and README.md document exactly this table (a unit test keeps them in step).
 */
export interface VariableSpec<N extends string = string, T = unknown> {
  name: N;
  /** Default as it would be written in the environment; `undefined`: unset by default. */
  default: string | undefined;
  /** Accepted values, in words, for the error message. */
  accepted: string;
  description: string;
  /** Parses the (non-blank) raw value. */
  schema: z.ZodType<T, string>;
  /** Never logged. */
  secret?: boolean;
}

const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().trim().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));

const positiveNumber = z
  .string()
  .trim()
  .regex(/^\d+(\.\d+)?$/)
  .transform(Number)
  .pipe(z.number().positive().finite());

const boolean = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no']))
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.string().trim().toLowerCase().pipe(z.enum(values));

export const BACKENDS = ['sqlite', 'supabase', 'postgres', 'memory'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const MiB = 2 ** 20;

const spec = <const N extends string, T, const D extends string | undefined>(
  name: N,
  defaultValue: D,
  accepted: string,
  description: string,
  schema: z.ZodType<T, string>,
  secret = false,
): VariableSpec<N, T> & { default: D } => ({
  name,
  default: defaultValue,
  accepted,
  description,
  schema,
  ...(secret ? { secret } : {}),
});

export const VARIABLES = [
  spec(
    'CONVERSATION_STORAGE_BACKEND',
    'sqlite',
    BACKENDS.join(', '),
    'Where conversations are stored: sqlite (persistent file in CACHE_DATA_DIR), supabase (SUPABASE_URL, SUPABASE_KEY), postgres (DATABASE_URL), memory (lost on restart).',
    oneOf(BACKENDS),
  ),
  spec(
    'CONVERSATION_STORAGE_STRICT',
    'false',
    'true or false',
    'With backend supabase or postgres and missing credentials: true stops start-up; false falls back to the embedded sqlite store with a warning.',
    boolean,
  ),
  spec(
    'SUPABASE_URL',
    undefined,
    'an http(s) URL',
    'Supabase project URL, e.g. https://xyz.supabase.co (backend supabase only).',
    z
      .string()
      .trim()
      .pipe(z.url({ protocol: /^https?$/ })),
  ),
  spec(
    'SUPABASE_KEY',
    undefined,
    'a non-empty key',
    'Supabase service-role (server-side secret) key; never logged (backend supabase only).',
    z.string().trim().min(1),
    true,
  ),
  spec(
    'DATABASE_URL',
    undefined,
    'a postgres:// or postgresql:// URL',
    'PostgreSQL connection string: the store (backend postgres), or beside supabase only to LISTEN (doorbell). Direct or session pooler (port 5432), not 6543. Migrate: npx hybrid-cache-migrate. Never logged.',
    z
      .string()
      .trim()
      .regex(/^postgres(ql)?:\/\/\S+$/),
    true,
  ),
  spec(
    'CONVERSATION_TIMEOUT_HOURS',
    String(DEFAULT_TIMEOUT_HOURS),
    'a number of hours > 0',
    'Time to live of a conversation thread, refreshed on each turn.',
    positiveNumber,
  ),
  spec(
    'MAX_CONVERSATION_TURNS',
    String(DEFAULT_MAX_TURNS),
    'an integer > 0',
    `Most turns in one thread; further turns are refused (HTTP 409). Invalid or <= 0 falls back to ${DEFAULT_MAX_TURNS} with a warning.`,
    z.string(),
  ),
  spec(
    'CACHE_DATA_DIR',
    './data',
    'a directory path',
    'Directory for store.db (embedded store) and outbox.db (unflushed writes); created if missing.',
    z.string().trim().min(1),
  ),
  spec(
    'CACHE_DURABILITY',
    CACHE.outbox.durability,
    DURABILITIES.join(', '),
    'When a write is acknowledged: none (memory only, lost on crash), process (survives kill -9), fsync (also survives power loss, slower).',
    oneOf(DURABILITIES),
  ),
  spec(
    'CACHE_MAX_ENTRIES',
    String(CACHE.maxEntries),
    'an integer >= 1',
    'Most clean entries kept in memory.',
    integer(1),
  ),
  spec(
    'CACHE_MAX_BYTES',
    String(CACHE.maxBytes),
    'an integer >= 1 (bytes)',
    'Most bytes of clean entries kept in memory.',
    integer(1),
  ),
  spec(
    'CACHE_MAX_VALUE_BYTES',
    String(CACHE.maxValueBytes),
    'an integer >= 1 (bytes)',
    `Largest serialized thread accepted; CACHE_MAX_BYTES and CACHE_MAX_PENDING_BYTES must each be at least it + ${ENTRY_HEADROOM_BYTES} (key and overhead).`,
    integer(1),
  ),
  spec(
    'CACHE_MAX_PENDING_BYTES',
    String(CACHE.maxPendingBytes),
    'an integer >= 1 (bytes)',
    'Most bytes of writes not yet in the store; past it writes are refused with 503 and Retry-After.',
    integer(1),
  ),
  spec(
    'CACHE_FLUSH_BATCH_SIZE',
    String(CACHE.flush.batchSize),
    'an integer >= 1',
    'Most keys sent to the store in one call.',
    integer(1),
  ),
  spec(
    'CACHE_FLUSH_INTERVAL_MS',
    String(CACHE.flush.intervalMs),
    'an integer >= 0 (ms)',
    'Longest a write waits before its batch is sent.',
    integer(0),
  ),
  spec(
    'CACHE_FLUSH_CONCURRENCY',
    String(CACHE.flush.concurrency),
    'an integer >= 1',
    'Store calls in flight at once.',
    integer(1),
  ),
  spec(
    'CACHE_RETRY_BASE_MS',
    String(CACHE.retry.baseMs),
    'an integer >= 1 (ms)',
    'First retry backoff step (exponential, full jitter).',
    integer(1),
  ),
  spec(
    'CACHE_RETRY_MAX_MS',
    String(CACHE.retry.maxMs),
    'an integer >= 1 (ms), at least CACHE_RETRY_BASE_MS',
    'Longest single retry backoff.',
    integer(1),
  ),
  spec(
    'CACHE_BREAKER_THRESHOLD',
    String(CACHE.breaker.failureThreshold),
    'an integer >= 1',
    'Consecutive failed store calls that open the circuit breaker (store offline).',
    integer(1),
  ),
  spec(
    'CACHE_BREAKER_HALF_OPEN_MS',
    String(CACHE.breaker.halfOpenAfterMs),
    'an integer >= 1 (ms)',
    'How long the breaker stays open before one probe call is let through.',
    integer(1),
  ),
  spec(
    'CACHE_READ_TIMEOUT_MS',
    String(CACHE.readTimeoutMs),
    'an integer >= 1 (ms)',
    'Deadline for one store read on a cache miss.',
    integer(1),
  ),
  spec(
    'CACHE_WRITE_TIMEOUT_MS',
    String(CACHE.writeTimeoutMs),
    'an integer >= 1 (ms)',
    'Deadline for one store write batch.',
    integer(1),
  ),
  spec(
    'CACHE_STORE_PATH',
    undefined,
    'a file path',
    "The embedded store's file (backend sqlite). Daemons on one host, each with its own CACHE_DATA_DIR, may share one and follow each other's changes. Unset: store.db in CACHE_DATA_DIR.",
    z.string().trim().min(1),
  ),
  spec(
    'CACHE_FEED_POLL_INTERVAL_MS',
    String(CACHE.feed.pollIntervalMs),
    'an integer >= 0 (ms; 0: off)',
    "How often the store's change feed is read, so that threads other daemons changed are not served stale. 0 turns following off: only for a store no other daemon writes to.",
    integer(0),
  ),
  spec(
    'CACHE_MAX_STALENESS_MS',
    String(CACHE.maxStalenessMs),
    'an integer >= 1 (ms), more than CACHE_FEED_POLL_INTERVAL_MS',
    'How long the last read of the change feed vouches for cached threads; past it a read checks the feed first, and while the store is unreachable answers from memory (counted as possibly stale in /metrics).',
    integer(1),
  ),
  spec(
    'CACHE_OUTBOX_MAX_BYTES',
    undefined,
    'an integer >= 65536 (bytes)',
    'Cap on outbox.db and its -wal together; when it is full, writes are refused (HTTP 503 outbox_unwritable) and /healthz answers 503. Unset: no cap.',
    integer(65_536),
  ),
  spec(
    'STORE_CLEANUP_INTERVAL_MINUTES',
    '60',
    'an integer >= 0 (minutes; 0: never)',
    'How often the daemon deletes expired rows and tombstones past their retention (7 days) from the store.',
    integer(0),
  ),
  spec(
    'LOG_LEVEL',
    'info',
    LOG_LEVELS.join(', '),
    'pino log level (logs are JSON lines on stdout).',
    oneOf(LOG_LEVELS),
  ),
  spec(
    'DAEMON_HOST',
    '127.0.0.1',
    'an IP address or host name',
    'Address the HTTP daemon binds; a non-loopback address requires DAEMON_TOKEN.',
    z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9.:_-]+$/),
  ),
  spec(
    'DAEMON_PORT',
    '8787',
    'an integer from 0 to 65535 (0: any free port)',
    'TCP port of the HTTP daemon.',
    integer(0, 65_535),
  ),
  spec(
    'DAEMON_TOKEN',
    undefined,
    'at least 16 printable ASCII characters, no whitespace',
    'When set, every request except GET /healthz needs "Authorization: Bearer <token>"; never logged.',
    // What a client can send in the header and the check can match: no spaces, no other bytes.
    z
      .string()
      .trim()
      .min(16)
      .regex(/^[\x21-\x7E]+$/),
    true,
  ),
  spec(
    'DAEMON_BODY_LIMIT_BYTES',
    String(MiB),
    'an integer >= 1 (bytes)',
    'Largest accepted request body; larger bodies get 413.',
    integer(1),
  ),
  spec(
    'DAEMON_HEADERS_TIMEOUT_MS',
    '10000',
    'an integer >= 1 (ms), at most DAEMON_REQUEST_TIMEOUT_MS',
    'A client must send its request headers within this time of starting a request, or the connection is closed (slow-header clients).',
    integer(1),
  ),
  spec(
    'DAEMON_REQUEST_TIMEOUT_MS',
    '30000',
    'an integer >= 1 (ms)',
    'A client must send its whole request, headers and body, within this time, or it gets 408 and the connection is closed (slow-body clients, authenticated or not).',
    integer(1),
  ),
  spec(
    'DAEMON_KEEP_ALIVE_TIMEOUT_MS',
    '5000',
    'an integer >= 1 (ms)',
    'How long an idle keep-alive connection is kept open after a response.',
    integer(1),
  ),
  spec(
    'DAEMON_CONNECTION_TIMEOUT_MS',
    '60000',
    'an integer >= 1 (ms), more than CACHE_READ_TIMEOUT_MS',
    'A connection with no traffic in either direction for this long is closed (e.g. a client that stops reading its response).',
    integer(1),
  ),
  spec(
    'DAEMON_MAX_CONNECTIONS',
    '1000',
    'an integer >= 1',
    'Most open client connections; connections beyond it are closed as soon as they are accepted.',
    integer(1),
  ),
  spec(
    'DAEMON_SHUTDOWN_TIMEOUT_MS',
    '5000',
    'an integer >= 0 (ms)',
    'On SIGTERM/SIGINT, how long to keep flushing to the store; what is left stays in the outbox for the next start.',
    integer(0),
  ),
] as const;

type Spec = (typeof VARIABLES)[number];
export type VariableName = Spec['name'];
/** Parsed value of each variable; `undefined` where it is unset and has no default. */
export type VariableValues = {
  [S in Spec as S['name']]: S extends VariableSpec<string, infer T>
    ? S['default'] extends string
      ? T
      : T | undefined
    : never;
};
