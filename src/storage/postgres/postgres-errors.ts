import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../contract/errors.js';

export const MIGRATE_HINT =
  'Apply the migrations: DATABASE_URL=<connection string> npx hybrid-cache-migrate (or call migrate() from hybrid-cache/postgres).';

const ROLE_HINT =
  'Connect as the role that applied the migrations (it owns the tables) or a role with BYPASSRLS that is granted service_role: the tables have row-level security on and no policies.';

/** Socket-level failures: the server or the path to it is unwell, so a later call may succeed. */
const TRANSIENT_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

/** TLS problems no retry fixes: the connection string's sslmode or the server's certificate is wrong. */
const TLS_CODES =
  /^(ERR_TLS_|ERR_SSL_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_|CERT_)/;

/**
 * SQLSTATEs a repeated call may get past: serialization failure, deadlock, lock or statement
 * timeout, a server shutting down or starting up, too many connections, out of resources, and a
 * read-only server during a failover.
 */
function transientSqlState(code: string): boolean {
  return (
    code === '40001' ||
    code === '40P01' ||
    code === '55P03' ||
    code === '57014' ||
    code === '25006' ||
    code.startsWith('57P') ||
    code.startsWith('08') ||
    code.startsWith('53') ||
    code.startsWith('58')
  );
}

/** The `code` of a node-postgres error: a SQLSTATE from the server, or an errno from the socket. */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Connecting to every address of a host fails with an AggregateError of each attempt's error.
  const errors = (error as { errors?: unknown }).errors;
  return Array.isArray(errors) ? errors.map(errorCode).find((c) => c !== undefined) : undefined;
}

function isSqlState(code: string | undefined): code is string {
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code);
}

/**
 * Maps a failure of a node-postgres call to the adapter's error types, by SQLSTATE or errno.
 * `redact` removes the connection's secrets from every message: the error the caller sees (and
 * logs) never holds the password, and the original error is kept as `cause` only when it came
 * from the server or the socket, whose messages never quote the connection string.
 */
export function classifyPgError(
  what: string,
  error: unknown,
  redact: (text: string) => string,
): TransientStorageError | PermanentStorageError | StorageConfigurationError {
  const code = errorCode(error);
  const message = redact(error instanceof Error ? error.message : String(error));
  const describe = `${what} failed${code ? ` (${code})` : ''}: ${message}`;
  const sqlState = isSqlState(code) ? code : undefined;
  const fromServerOrSocket = sqlState !== undefined || (code !== undefined && TRANSIENT_ERRNOS.has(code));
  const options = fromServerOrSocket ? { cause: error } : {};
  if (sqlState === undefined) {
    if (code !== undefined && TLS_CODES.test(code)) {
      return new StorageConfigurationError(
        `${describe}. Check the connection string's sslmode and the server's certificate.`,
        options,
      );
    }
    if (/does not support SSL|SASL|client password must be a string/i.test(message)) {
      return new StorageConfigurationError(`${describe}. Check the connection string.`, options);
    }
    if (error instanceof TypeError || (error instanceof Error && /Invalid URL/i.test(message))) {
      return new StorageConfigurationError(`${describe}. Check the connection string.`);
    }
    // Socket errors and node-postgres's own ("Connection terminated unexpectedly", connection
    // timeout) mean the server or the path to it went away.
    return new TransientStorageError(describe, options);
  }
  if (transientSqlState(sqlState)) return new TransientStorageError(describe, options);
  if (sqlState === '42883' || sqlState === '42P01' || sqlState === '3F000' || sqlState === '42704') {
    return new StorageConfigurationError(
      `${describe}. The hybrid-cache functions or tables are missing from the database. ${MIGRATE_HINT}`,
      options,
    );
  }
  if (sqlState.startsWith('28')) {
    return new StorageConfigurationError(
      `${describe}. The database refused the connection's credentials: check the user and password of DATABASE_URL.`,
      options,
    );
  }
  if (sqlState === '3D000') {
    return new StorageConfigurationError(
      `${describe}. The database named in the connection string does not exist.`,
      options,
    );
  }
  if (sqlState === '42501') {
    return new StorageConfigurationError(`${describe}. ${ROLE_HINT}`, options);
  }
  if (sqlState === '42725' || sqlState === '42P13') {
    return new StorageConfigurationError(
      `${describe}. The database's functions do not match this version of hybrid-cache. ${MIGRATE_HINT}`,
      options,
    );
  }
  // Data and constraint errors (22, 23), and anything else the server refuses: repeating cannot help.
  return new PermanentStorageError(describe, options);
}

/**
 * Whether the connection that failed so should not go back to the pool: anything but an error the
 * server reported for one statement on a healthy session.
 */
export function connectionBroken(error: unknown): boolean {
  const code = errorCode(error);
  return !isSqlState(code) || code.startsWith('08') || code.startsWith('57P') || code === '25006';
}

/**
 * A function that removes `secrets` from a text (and their URL-encoded forms, as a connection
 * string holds them).
 */
export function redactor(secrets: readonly (string | undefined)[]): (text: string) => string {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (!secret) continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
  }
  const sorted = [...forms].sort((a, b) => b.length - a.length);
  return (text) => sorted.reduce((out, secret) => out.replaceAll(secret, '[redacted]'), text);
}

/** The password in a connection string (URL or `key=value` form), if it holds one. */
export function connectionStringPassword(connectionString: string): string | undefined {
  try {
    const url = new URL(connectionString);
    const password = url.password ? safeDecode(url.password) : undefined;
    return password ?? url.searchParams.get('password') ?? undefined;
  } catch {
    const match = /(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/.exec(connectionString);
    const raw = match?.[1];
    if (raw === undefined) return undefined;
    return raw.startsWith("'") ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
