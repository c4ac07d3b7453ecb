import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  type Env,
  isLoopbackHost,
  loadConfig,
  MEMORY_BACKEND_WARNING,
  POSTGRES_FALLBACK_WARNING,
  resolveMaxTurns,
  SUPABASE_FALLBACK_WARNING,
  VARIABLES,
  type VariableSpec,
} from '../../../src/config/index.js';

const repoFile = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');
const TOKEN = 'a-token-of-16-chars-or-more';

function configError(env: Env): ConfigError {
  try {
    loadConfig(env, '/srv/app');
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const { config, warnings } = loadConfig({}, '/srv/app');
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      storage: {
        backend: 'sqlite',
        requested: 'sqlite',
        dataDir: '/srv/app/data',
        storePath: '/srv/app/data/store.db',
        cleanupIntervalMs: 3_600_000,
      },
      cache: {
        durability: 'process',
        outboxPath: '/srv/app/data/outbox.db',
        maxEntries: 10_000,
        maxBytes: 256 * 2 ** 20,
        maxValueBytes: 4 * 2 ** 20,
        maxPendingBytes: 64 * 2 ** 20,
        flush: { batchSize: 200, intervalMs: 20, concurrency: 4 },
        retry: { baseMs: 100, maxMs: 30_000 },
        breaker: { failureThreshold: 5, halfOpenAfterMs: 5_000 },
        readTimeoutMs: 5_000,
        writeTimeoutMs: 15_000,
        feedPollIntervalMs: 100,
        maxStalenessMs: 1_000,
      },
      conversation: { timeoutHours: 24, ttlMs: 24 * 3_600_000, maxTurns: 50 },
      daemon: {
        host: '127.0.0.1',
        port: 8787,
        bodyLimitBytes: 2 ** 20,
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 30_000,
        keepAliveTimeoutMs: 5_000,
        connectionTimeoutMs: 60_000,
        maxConnections: 1_000,
        shutdownTimeoutMs: 5_000,
      },
      logLevel: 'info',
    });
  });

  it('treats blank values as unset and reads every variable', () => {
    const blank = Object.fromEntries(VARIABLES.map((v) => [v.name, '  ']));
    expect(loadConfig(blank, '/srv/app')).toEqual(loadConfig({}, '/srv/app'));

    const { config } = loadConfig(
      {
        CACHE_DATA_DIR: '/var/lib/hc',
        CACHE_DURABILITY: 'FSYNC',
        CACHE_MAX_ENTRIES: '10',
        CACHE_MAX_BYTES: '2000',
        CACHE_MAX_VALUE_BYTES: '300',
        CACHE_MAX_PENDING_BYTES: '1400',
        CACHE_FLUSH_BATCH_SIZE: '7',
        CACHE_FLUSH_INTERVAL_MS: '0',
        CACHE_FLUSH_CONCURRENCY: '2',
        CACHE_RETRY_BASE_MS: '5',
        CACHE_RETRY_MAX_MS: '50',
        CACHE_BREAKER_THRESHOLD: '3',
        CACHE_BREAKER_HALF_OPEN_MS: '900',
        CACHE_READ_TIMEOUT_MS: '111',
        CACHE_WRITE_TIMEOUT_MS: '222',
        CACHE_STORE_PATH: 'shared/store.db',
        CACHE_FEED_POLL_INTERVAL_MS: '0',
        CACHE_MAX_STALENESS_MS: '1',
        CONVERSATION_TIMEOUT_HOURS: '0.5',
        MAX_CONVERSATION_TURNS: '7',
        LOG_LEVEL: 'debug',
        DAEMON_HOST: '0.0.0.0',
        DAEMON_PORT: '9000',
        DAEMON_TOKEN: TOKEN,
        DAEMON_BODY_LIMIT_BYTES: '4096',
        DAEMON_HEADERS_TIMEOUT_MS: '300',
        DAEMON_REQUEST_TIMEOUT_MS: '400',
        DAEMON_KEEP_ALIVE_TIMEOUT_MS: '500',
        DAEMON_CONNECTION_TIMEOUT_MS: '600',
        DAEMON_MAX_CONNECTIONS: '7',
        DAEMON_SHUTDOWN_TIMEOUT_MS: '0',
      },
      '/srv/app',
    );
    expect(config.storage).toMatchObject({ dataDir: '/var/lib/hc', storePath: '/srv/app/shared/store.db' });
    expect(config.cache).toEqual({
      durability: 'fsync',
      outboxPath: '/var/lib/hc/outbox.db',
      maxEntries: 10,
      maxBytes: 2000,
      maxValueBytes: 300,
      maxPendingBytes: 1400,
      flush: { batchSize: 7, intervalMs: 0, concurrency: 2 },
      retry: { baseMs: 5, maxMs: 50 },
      breaker: { failureThreshold: 3, halfOpenAfterMs: 900 },
      readTimeoutMs: 111,
      writeTimeoutMs: 222,
      feedPollIntervalMs: 0,
      maxStalenessMs: 1,
    });
    expect(config.conversation).toEqual({ timeoutHours: 0.5, ttlMs: 1_800_000, maxTurns: 7 });
    expect(config.daemon).toEqual({
      host: '0.0.0.0',
      port: 9000,
      token: TOKEN,
      bodyLimitBytes: 4096,
      headersTimeoutMs: 300,
      requestTimeoutMs: 400,
      keepAliveTimeoutMs: 500,
      connectionTimeoutMs: 600,
      maxConnections: 7,
      shutdownTimeoutMs: 0,
    });
    expect(config.logLevel).toBe('debug');
  });

  it('keeps the store in CACHE_DATA_DIR unless CACHE_STORE_PATH names another file', () => {
    expect(loadConfig({ CACHE_DATA_DIR: '/d' }, '/srv').config.storage.storePath).toBe('/d/store.db');
    expect(
      loadConfig({ CACHE_DATA_DIR: '/d', CACHE_STORE_PATH: '/shared/s.db' }, '/srv').config.storage.storePath,
    ).toBe('/shared/s.db');
  });

  it('follows the change feed by default, and refuses a staleness bound no longer than the poll interval', () => {
    expect(loadConfig({}, '/srv').config.cache).toMatchObject({
      feedPollIntervalMs: 100,
      maxStalenessMs: 1_000,
    });
    const error = configError({ CACHE_FEED_POLL_INTERVAL_MS: '500', CACHE_MAX_STALENESS_MS: '500' });
    expect(error.message).toContain(
      'CACHE_MAX_STALENESS_MS (500) must be more than CACHE_FEED_POLL_INTERVAL_MS (500)',
    );
  });

  it('resolves a relative CACHE_DATA_DIR against the working directory', () => {
    expect(loadConfig({ CACHE_DATA_DIR: 'state/x' }, '/srv/app').config.storage.dataDir).toBe(
      '/srv/app/state/x',
    );
  });

  const invalid: [string, string, string][] = [
    ['CONVERSATION_STORAGE_BACKEND', 'redis', 'sqlite, supabase, postgres, memory'],
    ['CONVERSATION_STORAGE_STRICT', 'maybe', 'true or false'],
    ['SUPABASE_URL', 'not a url', 'an http(s) URL'],
    ['CONVERSATION_TIMEOUT_HOURS', '0', 'a number of hours > 0'],
    ['CONVERSATION_TIMEOUT_HOURS', 'a day', 'a number of hours > 0'],
    ['CACHE_DURABILITY', 'always', 'none, process, fsync'],
    ['CACHE_MAX_ENTRIES', '0', 'an integer >= 1'],
    ['CACHE_MAX_BYTES', '1.5', 'an integer >= 1 (bytes)'],
    ['CACHE_MAX_VALUE_BYTES', '-4', 'an integer >= 1 (bytes)'],
    ['CACHE_MAX_PENDING_BYTES', '64MB', 'an integer >= 1 (bytes)'],
    ['CACHE_FLUSH_BATCH_SIZE', 'lots', 'an integer >= 1'],
    ['CACHE_FLUSH_INTERVAL_MS', '-1', 'an integer >= 0 (ms)'],
    ['CACHE_FLUSH_CONCURRENCY', '0', 'an integer >= 1'],
    ['CACHE_RETRY_BASE_MS', '0', 'an integer >= 1 (ms)'],
    ['CACHE_RETRY_MAX_MS', 'x', 'an integer >= 1 (ms), at least CACHE_RETRY_BASE_MS'],
    ['CACHE_BREAKER_THRESHOLD', '0', 'an integer >= 1'],
    ['CACHE_BREAKER_HALF_OPEN_MS', '1e3', 'an integer >= 1 (ms)'],
    ['CACHE_READ_TIMEOUT_MS', '0', 'an integer >= 1 (ms)'],
    ['CACHE_WRITE_TIMEOUT_MS', '0x10', 'an integer >= 1 (ms)'],
    ['CACHE_FEED_POLL_INTERVAL_MS', '-1', 'an integer >= 0 (ms; 0: off)'],
    ['CACHE_MAX_STALENESS_MS', '0', 'an integer >= 1 (ms), more than CACHE_FEED_POLL_INTERVAL_MS'],
    ['STORE_CLEANUP_INTERVAL_MINUTES', '-5', 'an integer >= 0 (minutes; 0: never)'],
    ['CACHE_OUTBOX_MAX_BYTES', '1024', 'an integer >= 65536 (bytes)'],
    ['LOG_LEVEL', 'verbose', 'fatal, error, warn, info, debug, trace, silent'],
    ['DAEMON_HOST', 'my host', 'an IP address or host name'],
    ['DAEMON_PORT', '70000', 'an integer from 0 to 65535 (0: any free port)'],
    ['DAEMON_BODY_LIMIT_BYTES', '0', 'an integer >= 1 (bytes)'],
    ['DAEMON_SHUTDOWN_TIMEOUT_MS', 'soon', 'an integer >= 0 (ms)'],
    ['DAEMON_HEADERS_TIMEOUT_MS', '0', 'an integer >= 1 (ms), at most DAEMON_REQUEST_TIMEOUT_MS'],
    ['DAEMON_REQUEST_TIMEOUT_MS', '0', 'an integer >= 1 (ms)'],
    ['DAEMON_KEEP_ALIVE_TIMEOUT_MS', '5s', 'an integer >= 1 (ms)'],
    ['DAEMON_CONNECTION_TIMEOUT_MS', '-1', 'an integer >= 1 (ms), more than CACHE_READ_TIMEOUT_MS'],
    ['DAEMON_MAX_CONNECTIONS', '0', 'an integer >= 1'],
  ];

  it.each(invalid)(
    'stops on %s=%j with one message naming it and the accepted values',
    (name, value, accepted) => {
      const error = configError({ [name]: value });
      expect(error.problems).toHaveLength(1);
      expect(error.message).toBe(
        `invalid configuration: ${name}=${JSON.stringify(value)} is invalid; accepted: ${accepted}`,
      );
    },
  );

  it('covers every validated variable in the table above', () => {
    // Blank means default, so these cannot be invalid (DAEMON_TOKEN and DATABASE_URL, secrets, are checked below).
    const lenient = new Set([
      'MAX_CONVERSATION_TURNS',
      'SUPABASE_KEY',
      'DAEMON_TOKEN',
      'DATABASE_URL',
      'CACHE_DATA_DIR',
      'CACHE_STORE_PATH',
    ]);
    const tested = new Set(invalid.map(([name]) => name));
    expect(VARIABLES.map((v) => v.name).filter((name) => !lenient.has(name) && !tested.has(name))).toEqual(
      [],
    );
  });

  it('never repeats a secret in its message', () => {
    const error = configError({ DAEMON_TOKEN: 'short-secret' });
    expect(error.message).toBe(
      'invalid configuration: DAEMON_TOKEN=(hidden) is invalid; accepted: at least 16 printable ASCII characters, no whitespace',
    );
    expect(error.message).not.toContain('short-secret');
  });

  it.each([
    ['a space', 'token-part-one token-part-two'],
    ['a tab', 'token-part-one\ttoken-part-two'],
    ['a non-ASCII letter', 'token-part-one-é-token-part-two'],
  ])('refuses a DAEMON_TOKEN containing %s, which no bearer header could match', (_, token) => {
    const error = configError({ DAEMON_TOKEN: token });
    expect(error.message).toBe(
      'invalid configuration: DAEMON_TOKEN=(hidden) is invalid; accepted: at least 16 printable ASCII characters, no whitespace',
    );
  });

  it('accepts a DAEMON_TOKEN with surrounding blanks, trimmed, and any printable ASCII', () => {
    const token = 'A-z0-9_.~+/=!$%&*?@^|#';
    expect(loadConfig({ DAEMON_TOKEN: `  ${token}\n` }, '/srv/app').config.daemon.token).toBe(token);
  });

  it('lists every invalid variable in one message', () => {
    const error = configError({ CACHE_DURABILITY: 'x', DAEMON_PORT: 'y' });
    expect(error.problems).toHaveLength(2);
    expect(error.message).toContain('CACHE_DURABILITY="x"');
    expect(error.message).toContain('DAEMON_PORT="y"');
  });

  it('checks values that depend on each other', () => {
    expect(configError({ DAEMON_CONNECTION_TIMEOUT_MS: '5000', CACHE_READ_TIMEOUT_MS: '5000' }).message).toBe(
      'invalid configuration: DAEMON_CONNECTION_TIMEOUT_MS (5000) must be longer than CACHE_READ_TIMEOUT_MS (5000), or a request waiting on a store read would lose its connection',
    );
    expect(
      configError({ DAEMON_HEADERS_TIMEOUT_MS: '2001', DAEMON_REQUEST_TIMEOUT_MS: '2000' }).message,
    ).toBe(
      'invalid configuration: DAEMON_HEADERS_TIMEOUT_MS (2001) must be at most DAEMON_REQUEST_TIMEOUT_MS (2000)',
    );
    expect(
      loadConfig({ DAEMON_HEADERS_TIMEOUT_MS: '2000', DAEMON_REQUEST_TIMEOUT_MS: '2000' }, '/srv/app').config
        .daemon.headersTimeoutMs,
    ).toBe(2000);
    expect(configError({ CACHE_RETRY_BASE_MS: '500', CACHE_RETRY_MAX_MS: '100' }).message).toBe(
      'invalid configuration: CACHE_RETRY_MAX_MS (100) must be at least CACHE_RETRY_BASE_MS (500)',
    );
    // The cache's own rule: room for the largest value under a longest key (512 bytes) and 64 bytes of overhead.
    for (const [limit, valueBytes, purpose] of [
      ['CACHE_MAX_PENDING_BYTES', 2000, 'can be queued'],
      ['CACHE_MAX_BYTES', 4500, 'fits in memory'],
    ] as const) {
      const env = (room: number) => ({
        CACHE_MAX_VALUE_BYTES: `${valueBytes}`,
        [limit]: `${valueBytes + room}`,
      });
      expect(configError(env(575)).message).toBe(
        `invalid configuration: ${limit} (${valueBytes + 575}) must be at least CACHE_MAX_VALUE_BYTES (${valueBytes}) + 576 bytes of key and overhead, so the largest thread ${purpose}`,
      );
      expect(() => loadConfig(env(576), '/srv/app')).not.toThrow();
    }
  });

  describe('binding', () => {
    it('treats only loopback literals and localhost as loopback', () => {
      expect(isLoopbackHost('[::1]')).toBe(true);
      expect(isLoopbackHost('128.0.0.1')).toBe(false);
      expect(isLoopbackHost('localhost.example.com')).toBe(false);
      expect(isLoopbackHost('::')).toBe(false);
    });

    it.each(['0.0.0.0', '::', '192.168.1.10', 'example.com'])(
      'refuses non-loopback %s without DAEMON_TOKEN',
      (host) => {
        expect(configError({ DAEMON_HOST: host }).message).toContain(
          `DAEMON_HOST=${host} is not a loopback address: set DAEMON_TOKEN`,
        );
        expect(loadConfig({ DAEMON_HOST: host, DAEMON_TOKEN: TOKEN }).config.daemon.host).toBe(host);
      },
    );

    it.each(['127.0.0.1', '127.1.2.3', '::1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1'])(
      'accepts loopback %s without a token',
      (host) => {
        expect(isLoopbackHost(host)).toBe(true);
        expect(loadConfig({ DAEMON_HOST: host }).config.daemon.host).toBe(host);
      },
    );
  });

  describe('storage backend', () => {
    const supabaseEnv = { SUPABASE_URL: 'https://xyz.supabase.co', SUPABASE_KEY: 'service-role-key' };

    it('uses supabase when both credentials are set', () => {
      const { config, warnings } = loadConfig({ CONVERSATION_STORAGE_BACKEND: 'supabase', ...supabaseEnv });
      expect(config.storage).toMatchObject({
        backend: 'supabase',
        requested: 'supabase',
        supabase: { url: 'https://xyz.supabase.co', key: 'service-role-key' },
      });
      expect(config.cache.durability).toBe('process');
      expect(warnings).toEqual([]);
      expect(config.storage.supabase?.listen).toBeUndefined();
    });

    it('with supabase, uses DATABASE_URL only to listen for the doorbell', () => {
      const DATABASE_URL = 'postgres://postgres:secret@db.xyz.supabase.co:5432/postgres';
      const { config } = loadConfig({
        CONVERSATION_STORAGE_BACKEND: 'supabase',
        ...supabaseEnv,
        DATABASE_URL,
      });
      expect(config.storage).toMatchObject({
        backend: 'supabase',
        supabase: { url: 'https://xyz.supabase.co', key: 'service-role-key', listen: DATABASE_URL },
      });
      expect(config.storage.postgres).toBeUndefined();
    });

    it.each([
      [{}, 'SUPABASE_URL and SUPABASE_KEY'],
      [{ SUPABASE_URL: supabaseEnv.SUPABASE_URL }, 'SUPABASE_KEY'],
      [{ SUPABASE_KEY: supabaseEnv.SUPABASE_KEY }, 'SUPABASE_URL'],
    ])(
      'falls back to sqlite with a loud warning when credentials are missing (%j)',
      (credentials, missing) => {
        const { config, warnings } = loadConfig({ CONVERSATION_STORAGE_BACKEND: 'supabase', ...credentials });
        expect(config.storage.backend).toBe('sqlite');
        expect(config.storage.requested).toBe('supabase');
        expect(config.storage.supabase).toBeUndefined();
        expect(warnings).toEqual([
          { variable: 'CONVERSATION_STORAGE_BACKEND', message: SUPABASE_FALLBACK_WARNING },
        ]);
        expect(SUPABASE_FALLBACK_WARNING).toMatch(/Supabase requested but not configured.*embedded sqlite/);

        const strict = configError({
          CONVERSATION_STORAGE_BACKEND: 'supabase',
          CONVERSATION_STORAGE_STRICT: 'true',
          ...credentials,
        });
        expect(strict.message).toBe(
          `invalid configuration: CONVERSATION_STORAGE_BACKEND=supabase needs ${missing} (CONVERSATION_STORAGE_STRICT=true forbids falling back to the embedded store)`,
        );
      },
    );

    it('strict mode changes nothing when credentials are there', () => {
      const { config } = loadConfig({
        CONVERSATION_STORAGE_BACKEND: 'supabase',
        CONVERSATION_STORAGE_STRICT: 'yes',
        ...supabaseEnv,
      });
      expect(config.storage.backend).toBe('supabase');
    });

    const databaseUrl = 'postgres://app:pg-secret@db.example.com:5432/app';

    it('uses postgres when DATABASE_URL is set', () => {
      const { config, warnings } = loadConfig({
        CONVERSATION_STORAGE_BACKEND: 'postgres',
        DATABASE_URL: databaseUrl,
      });
      expect(config.storage).toMatchObject({
        backend: 'postgres',
        requested: 'postgres',
        postgres: { connectionString: databaseUrl },
      });
      expect(config.storage.supabase).toBeUndefined();
      expect(warnings).toEqual([]);
    });

    it('falls back to sqlite with a loud warning without DATABASE_URL, unless strict', () => {
      const { config, warnings } = loadConfig({ CONVERSATION_STORAGE_BACKEND: 'postgres' });
      expect(config.storage).toMatchObject({ backend: 'sqlite', requested: 'postgres' });
      expect(config.storage.postgres).toBeUndefined();
      expect(warnings).toEqual([
        { variable: 'CONVERSATION_STORAGE_BACKEND', message: POSTGRES_FALLBACK_WARNING },
      ]);
      expect(
        configError({ CONVERSATION_STORAGE_BACKEND: 'postgres', CONVERSATION_STORAGE_STRICT: 'true' })
          .message,
      ).toBe(
        'invalid configuration: CONVERSATION_STORAGE_BACKEND=postgres needs DATABASE_URL (CONVERSATION_STORAGE_STRICT=true forbids falling back to the embedded store)',
      );
    });

    it('refuses a DATABASE_URL that is not a postgres URL without repeating it', () => {
      const error = configError({ DATABASE_URL: 'mysql://app:pg-secret@db' });
      expect(error.message).toBe(
        'invalid configuration: DATABASE_URL=(hidden) is invalid; accepted: a postgres:// or postgresql:// URL',
      );
      expect(error.message).not.toContain('pg-secret');
    });

    it('warns, as the original did, that the memory backend loses conversations on restart', () => {
      const { config, warnings } = loadConfig({
        CONVERSATION_STORAGE_BACKEND: 'Memory',
        CACHE_DURABILITY: 'fsync',
      });
      expect(config.storage.backend).toBe('memory');
      expect(config.cache.durability).toBe('none');
      expect(warnings).toEqual([
        { variable: 'CONVERSATION_STORAGE_BACKEND', message: MEMORY_BACKEND_WARNING },
      ]);
      expect(MEMORY_BACKEND_WARNING).toContain(
        'CONVERSATION STORAGE: Using in-memory storage (conversations lost on restart)',
      );
    });
  });

  describe('MAX_CONVERSATION_TURNS (lenient, like the original)', () => {
    it.each(['abc', '0', '-3', '2.5', ' '])('%j falls back to 50', (raw) => {
      const { config, warnings } = loadConfig({ MAX_CONVERSATION_TURNS: raw });
      expect(config.conversation.maxTurns).toBe(50);
      if (raw.trim() === '') {
        expect(warnings).toEqual([]);
      } else {
        expect(warnings).toEqual([
          {
            variable: 'MAX_CONVERSATION_TURNS',
            message: `Invalid MAX_CONVERSATION_TURNS value (${JSON.stringify(raw)}), using default of 50 turns`,
          },
        ]);
      }
    });

    it.each([
      ['7', 7],
      ['50', 50],
      [' 120 ', 120],
    ])('%j is used as is, without a warning', (raw, turns) => {
      const { config, warnings } = loadConfig({ MAX_CONVERSATION_TURNS: raw });
      expect(config.conversation.maxTurns).toBe(turns);
      expect(warnings).toEqual([]);
    });
  });
});

describe('documentation of the variables', () => {
  const defaultText = (variable: VariableSpec) => variable.default ?? '(unset)';

  it('.env.example documents every variable as VARIABLES describes it, and nothing else', () => {
    const lines = repoFile('.env.example').split('\n');
    const assignments = lines.flatMap((line, index) => {
      const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
      return match ? [{ name: match[1], value: match[2], index }] : [];
    });
    expect(assignments.map((a) => a.name).sort()).toEqual(VARIABLES.map((v) => v.name).sort());
    for (const variable of VARIABLES) {
      const { value, index } = assignments.find((a) => a.name === variable.name) as {
        value: string;
        index: number;
      };
      expect(value, variable.name).toBe(variable.default ?? '');
      let start = index;
      while (start > 0 && lines[start - 1]?.startsWith('# ')) start--;
      const comment = lines
        .slice(start, index)
        .map((line) => line.slice(2))
        .join(' ');
      expect(comment, variable.name).toBe(
        `${variable.description} Accepted: ${variable.accepted}. Default: ${defaultText(variable)}.`,
      );
    }
  });

  it("README.md's configuration table has exactly VARIABLES' rows: name, default, accepted, meaning", () => {
    const readme = repoFile('README.md');
    const section = readme.slice(readme.indexOf('### Configuration'), readme.indexOf('Rules worth knowing'));
    const rows = section
      .split('\n')
      .filter((line) => /^\| `[A-Z][A-Z0-9_]*` /.test(line))
      .map((line) =>
        line
          .slice(1, -1)
          .split(' | ')
          .map((cell) => cell.trim()),
      );
    expect(rows).toEqual(
      VARIABLES.map((v) => [
        `\`${v.name}\``,
        v.default === undefined ? '(unset)' : `\`${v.default}\``,
        v.accepted,
        v.description,
      ]),
    );
  });
});

describe('resolveMaxTurns', () => {
  it.each([
    [undefined, 50],
    ['', 50],
    ['abc', 50],
    ['0', 50],
    ['-5', 50],
    ['1.5', 50],
    ['10', 10],
    [' 7 ', 7],
  ])('resolveMaxTurns(%j) = %d', (raw, expected) => {
    expect(resolveMaxTurns(raw)).toBe(expected);
  });
});
