import { isAbsolute, join, resolve } from 'node:path';
import {
  type DURABILITIES,
  ENTRY_HEADROOM_BYTES,
  limitsTooSmallForLargestEntry,
} from '../cache/option-defaults.js';
import { DEFAULT_MAX_TURNS, HOUR_MS } from '../conversation/option-defaults.js';
import { ConfigError } from './config-error.js';
import { isLoopbackHost } from './loopback.js';
import { resolveMaxTurns } from './max-turns.js';
import { type BACKENDS, type LOG_LEVELS, VARIABLES, type VariableValues } from './variables.js';

export type Backend = (typeof BACKENDS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type Durability = (typeof DURABILITIES)[number];

export interface Config {
  storage: {
    /** The backend actually used (after a supabase fallback). */
    backend: Backend;
    /** The backend the environment asked for. */
    requested: Backend;
    /** Absolute directory of store.db and outbox.db (unused by `memory`). */
    dataDir: string;
    /** Embedded store file, when backend is `sqlite` (CACHE_STORE_PATH, or store.db in the data directory). */
    storePath: string;
    /**
     * With `listen` (DATABASE_URL, a secret) a direct connection used only to listen for other
     * daemons' changes (the doorbell): PostgREST cannot LISTEN.
     */
    supabase?: { url: string; key: string; listen?: string };
    /** The connection string (a secret), when backend is `postgres`. */
    postgres?: { connectionString: string };
    /** How often expired rows and old tombstones are purged from the store; 0 disables it. */
    cleanupIntervalMs: number;
  };
  cache: {
    /** `none` for the memory backend, whatever CACHE_DURABILITY says: there is nothing to replay into. */
    durability: Durability;
    outboxPath: string;
    /** Cap on the outbox file, if any. */
    outboxMaxBytes?: number;
    maxEntries: number;
    maxBytes: number;
    maxValueBytes: number;
    maxPendingBytes: number;
    flush: { batchSize: number; intervalMs: number; concurrency: number };
    retry: { baseMs: number; maxMs: number };
    breaker: { failureThreshold: number; halfOpenAfterMs: number };
    readTimeoutMs: number;
    writeTimeoutMs: number;
    /** How often the store's change feed is read; 0: not followed. */
    feedPollIntervalMs: number;
    maxStalenessMs: number;
  };
  conversation: { ttlMs: number; timeoutHours: number; maxTurns: number };
  daemon: {
    host: string;
    port: number;
    token?: string;
    bodyLimitBytes: number;
    /** Deadline for a request's headers, from its first byte. */
    headersTimeoutMs: number;
    /** Deadline for a whole request (headers and body), from its first byte. */
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    /** Inactivity (no bytes either way) after which a connection is closed. */
    connectionTimeoutMs: number;
    maxConnections: number;
    shutdownTimeoutMs: number;
  };
  logLevel: LogLevel;
}

/** Something start-up should log at `warn`; the config is still usable. */
export interface ConfigWarning {
  variable: string;
  message: string;
}

export interface LoadedConfig {
  config: Config;
  warnings: ConfigWarning[];
}

export type Env = Readonly<Record<string, string | undefined>>;

/** The original daemon's warnings, kept word for word where they existed. */
export const MEMORY_BACKEND_WARNING =
  '⚠️  CONVERSATION STORAGE: Using in-memory storage (conversations lost on restart). ' +
  'Set CONVERSATION_STORAGE_BACKEND=sqlite (default) or supabase in .env for persistent storage.';
export const SUPABASE_FALLBACK_WARNING =
  '⚠️  Supabase requested but not configured (SUPABASE_URL and SUPABASE_KEY are required), ' +
  'using the embedded sqlite store instead. Set CONVERSATION_STORAGE_STRICT=true to make this an error.';

export const POSTGRES_FALLBACK_WARNING =
  '⚠️  PostgreSQL requested but not configured (DATABASE_URL is required), ' +
  'using the embedded sqlite store instead. Set CONVERSATION_STORAGE_STRICT=true to make this an error.';

/**
 * Reads the daemon's configuration from an environment (pure: no I/O, nothing logged).
 * Blank values count as unset. Relative `CACHE_DATA_DIR` resolves against `cwd`.
 * @throws ConfigError naming every invalid variable and what it accepts.
 */
export function loadConfig(env: Env, cwd: string = process.cwd()): LoadedConfig {
  const values = parseVariables(env);
  const warnings: ConfigWarning[] = [];
  const problems: string[] = [];

  const requested = values.CONVERSATION_STORAGE_BACKEND;
  let backend = requested;
  let supabase: Config['storage']['supabase'];
  if (requested === 'supabase') {
    const { SUPABASE_URL: url, SUPABASE_KEY: key } = values;
    if (url && key) {
      supabase = { url, key, ...(values.DATABASE_URL ? { listen: values.DATABASE_URL } : {}) };
    } else if (values.CONVERSATION_STORAGE_STRICT) {
      const missing = [url ? undefined : 'SUPABASE_URL', key ? undefined : 'SUPABASE_KEY'].filter(Boolean);
      problems.push(
        `CONVERSATION_STORAGE_BACKEND=supabase needs ${missing.join(' and ')} (CONVERSATION_STORAGE_STRICT=true forbids falling back to the embedded store)`,
      );
    } else {
      backend = 'sqlite';
      warnings.push({ variable: 'CONVERSATION_STORAGE_BACKEND', message: SUPABASE_FALLBACK_WARNING });
    }
  }
  let postgres: Config['storage']['postgres'];
  if (requested === 'postgres') {
    if (values.DATABASE_URL) {
      postgres = { connectionString: values.DATABASE_URL };
    } else if (values.CONVERSATION_STORAGE_STRICT) {
      problems.push(
        'CONVERSATION_STORAGE_BACKEND=postgres needs DATABASE_URL (CONVERSATION_STORAGE_STRICT=true forbids falling back to the embedded store)',
      );
    } else {
      // As for supabase: the daemon still starts, on the embedded store, and says so loudly.
      backend = 'sqlite';
      warnings.push({ variable: 'CONVERSATION_STORAGE_BACKEND', message: POSTGRES_FALLBACK_WARNING });
    }
  }
  if (backend === 'memory') {
    warnings.push({ variable: 'CONVERSATION_STORAGE_BACKEND', message: MEMORY_BACKEND_WARNING });
  }

  const rawTurns = env.MAX_CONVERSATION_TURNS;
  const maxTurns = resolveMaxTurns(blank(rawTurns) ? undefined : rawTurns);
  if (!blank(rawTurns) && maxTurns === DEFAULT_MAX_TURNS && Number(rawTurns?.trim()) !== DEFAULT_MAX_TURNS) {
    warnings.push({
      variable: 'MAX_CONVERSATION_TURNS',
      message: `Invalid MAX_CONVERSATION_TURNS value (${JSON.stringify(rawTurns)}), using default of ${DEFAULT_MAX_TURNS} turns`,
    });
  }

  if (values.CACHE_RETRY_MAX_MS < values.CACHE_RETRY_BASE_MS) {
    problems.push(
      `CACHE_RETRY_MAX_MS (${values.CACHE_RETRY_MAX_MS}) must be at least CACHE_RETRY_BASE_MS (${values.CACHE_RETRY_BASE_MS})`,
    );
  }
  const tooSmall = limitsTooSmallForLargestEntry({
    maxBytes: values.CACHE_MAX_BYTES,
    maxValueBytes: values.CACHE_MAX_VALUE_BYTES,
    maxPendingBytes: values.CACHE_MAX_PENDING_BYTES,
  });
  if (tooSmall.includes('maxBytes')) {
    problems.push(
      `CACHE_MAX_BYTES (${values.CACHE_MAX_BYTES}) must be at least CACHE_MAX_VALUE_BYTES (${values.CACHE_MAX_VALUE_BYTES}) + ${ENTRY_HEADROOM_BYTES} bytes of key and overhead, so the largest thread fits in memory`,
    );
  }
  if (tooSmall.includes('maxPendingBytes')) {
    problems.push(
      `CACHE_MAX_PENDING_BYTES (${values.CACHE_MAX_PENDING_BYTES}) must be at least CACHE_MAX_VALUE_BYTES (${values.CACHE_MAX_VALUE_BYTES}) + ${ENTRY_HEADROOM_BYTES} bytes of key and overhead, so the largest thread can be queued`,
    );
  }
  if (
    values.CACHE_FEED_POLL_INTERVAL_MS > 0 &&
    values.CACHE_MAX_STALENESS_MS <= values.CACHE_FEED_POLL_INTERVAL_MS
  ) {
    problems.push(
      `CACHE_MAX_STALENESS_MS (${values.CACHE_MAX_STALENESS_MS}) must be more than CACHE_FEED_POLL_INTERVAL_MS (${values.CACHE_FEED_POLL_INTERVAL_MS}), or every read between two polls would ask the store`,
    );
  }
  // Node refuses a header deadline later than the whole request's.
  if (values.DAEMON_HEADERS_TIMEOUT_MS > values.DAEMON_REQUEST_TIMEOUT_MS) {
    problems.push(
      `DAEMON_HEADERS_TIMEOUT_MS (${values.DAEMON_HEADERS_TIMEOUT_MS}) must be at most DAEMON_REQUEST_TIMEOUT_MS (${values.DAEMON_REQUEST_TIMEOUT_MS})`,
    );
  }
  // No bytes move while a request waits on the store, so the idle deadline must outlast that wait.
  if (values.DAEMON_CONNECTION_TIMEOUT_MS <= values.CACHE_READ_TIMEOUT_MS) {
    problems.push(
      `DAEMON_CONNECTION_TIMEOUT_MS (${values.DAEMON_CONNECTION_TIMEOUT_MS}) must be longer than CACHE_READ_TIMEOUT_MS (${values.CACHE_READ_TIMEOUT_MS}), or a request waiting on a store read would lose its connection`,
    );
  }
  if (!values.DAEMON_TOKEN && !isLoopbackHost(values.DAEMON_HOST)) {
    problems.push(
      `DAEMON_HOST=${values.DAEMON_HOST} is not a loopback address: set DAEMON_TOKEN (at least 16 printable ASCII characters) or bind 127.0.0.1, ::1 or localhost`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = isAbsolute(values.CACHE_DATA_DIR)
    ? values.CACHE_DATA_DIR
    : resolve(cwd, values.CACHE_DATA_DIR);
  const timeoutHours = values.CONVERSATION_TIMEOUT_HOURS;
  const config: Config = {
    storage: {
      backend,
      requested,
      dataDir,
      storePath:
        values.CACHE_STORE_PATH === undefined
          ? join(dataDir, 'store.db')
          : resolve(cwd, values.CACHE_STORE_PATH),
      ...(supabase ? { supabase } : {}),
      ...(postgres ? { postgres } : {}),
      cleanupIntervalMs: values.STORE_CLEANUP_INTERVAL_MINUTES * 60_000,
    },
    cache: {
      durability: backend === 'memory' ? 'none' : values.CACHE_DURABILITY,
      outboxPath: join(dataDir, 'outbox.db'),
      ...(values.CACHE_OUTBOX_MAX_BYTES === undefined
        ? {}
        : { outboxMaxBytes: values.CACHE_OUTBOX_MAX_BYTES }),
      maxEntries: values.CACHE_MAX_ENTRIES,
      maxBytes: values.CACHE_MAX_BYTES,
      maxValueBytes: values.CACHE_MAX_VALUE_BYTES,
      maxPendingBytes: values.CACHE_MAX_PENDING_BYTES,
      flush: {
        batchSize: values.CACHE_FLUSH_BATCH_SIZE,
        intervalMs: values.CACHE_FLUSH_INTERVAL_MS,
        concurrency: values.CACHE_FLUSH_CONCURRENCY,
      },
      retry: { baseMs: values.CACHE_RETRY_BASE_MS, maxMs: values.CACHE_RETRY_MAX_MS },
      breaker: {
        failureThreshold: values.CACHE_BREAKER_THRESHOLD,
        halfOpenAfterMs: values.CACHE_BREAKER_HALF_OPEN_MS,
      },
      readTimeoutMs: values.CACHE_READ_TIMEOUT_MS,
      writeTimeoutMs: values.CACHE_WRITE_TIMEOUT_MS,
      feedPollIntervalMs: values.CACHE_FEED_POLL_INTERVAL_MS,
      maxStalenessMs: values.CACHE_MAX_STALENESS_MS,
    },
    conversation: { timeoutHours, ttlMs: Math.round(timeoutHours * HOUR_MS), maxTurns },
    daemon: {
      host: values.DAEMON_HOST,
      port: values.DAEMON_PORT,
      ...(values.DAEMON_TOKEN ? { token: values.DAEMON_TOKEN } : {}),
      bodyLimitBytes: values.DAEMON_BODY_LIMIT_BYTES,
      headersTimeoutMs: values.DAEMON_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: values.DAEMON_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: values.DAEMON_KEEP_ALIVE_TIMEOUT_MS,
      connectionTimeoutMs: values.DAEMON_CONNECTION_TIMEOUT_MS,
      maxConnections: values.DAEMON_MAX_CONNECTIONS,
      shutdownTimeoutMs: values.DAEMON_SHUTDOWN_TIMEOUT_MS,
    },
    logLevel: values.LOG_LEVEL,
  };
  return { config, warnings };
}

function blank(raw: string | undefined): boolean {
  return raw === undefined || raw.trim() === '';
}

/** Parses every variable (blank: its default); throws one ConfigError listing all invalid ones. */
function parseVariables(env: Env): VariableValues {
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const variable of VARIABLES) {
    const raw = env[variable.name];
    const effective = blank(raw) ? variable.default : raw;
    if (effective === undefined) {
      values[variable.name] = undefined;
      continue;
    }
    const parsed = variable.schema.safeParse(effective);
    if (parsed.success) {
      values[variable.name] = parsed.data;
    } else {
      const shown = 'secret' in variable && variable.secret ? '(hidden)' : JSON.stringify(effective);
      problems.push(`${variable.name}=${shown} is invalid; accepted: ${variable.accepted}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values as VariableValues;
}
