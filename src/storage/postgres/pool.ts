import pg from 'pg';
import { StorageConfigurationError } from '../contract/errors.js';
import { connectionStringPassword, redactor } from './postgres-errors.js';

/** Where a PostgreSQL connection comes from: a connection string, or a pool the caller owns. */
export type PoolSource =
  | {
      /**
       * A libpq connection string, e.g. postgres://user:password@host:5432/postgres. Its password
       * never appears in an error message or a log line.
       */
      connectionString: string;
      /** Most connections the pool this creates opens at once. Default 10. */
      max?: number;
      pool?: never;
    }
  | {
      /** An existing node-postgres pool; it stays open after `close()`, for its owner to end. */
      pool: pg.Pool;
      connectionString?: never;
      max?: never;
    };

export interface ResolvedPool {
  pool: pg.Pool;
  /** Whether the pool was created here, so that closing ends it. */
  owned: boolean;
  /** Removes the connection's password from a text. */
  redact: (text: string) => string;
  /** How to open a connection of its own to the same database (the doorbell's, outside the pool). */
  clientConfig: pg.ClientConfig;
}

/** The pool a `PoolSource` names, created when given a connection string. */
export function poolFrom(source: PoolSource, who: string): ResolvedPool {
  if (source.pool) {
    const options = (source.pool as { options?: { password?: unknown; connectionString?: unknown } }).options;
    const connectionString =
      typeof options?.connectionString === 'string' ? options.connectionString : undefined;
    return {
      pool: source.pool,
      owned: false,
      // node-postgres keeps a pool's password non-enumerable: a spread alone would leave it out.
      clientConfig: {
        ...(options as pg.ClientConfig | undefined),
        ...(options?.password === undefined
          ? {}
          : { password: options.password as pg.ClientConfig['password'] }),
      },
      redact: redactor([
        typeof options?.password === 'string' ? options.password : undefined,
        connectionString && connectionStringPassword(connectionString),
      ]),
    };
  }
  if (typeof source.connectionString !== 'string' || source.connectionString.trim() === '') {
    throw new StorageConfigurationError(`${who} needs { connectionString } (e.g. DATABASE_URL) or { pool }`);
  }
  const { connectionString } = source;
  const redact = redactor([connectionStringPassword(connectionString)]);
  const clientConfig = { connectionString, application_name: 'hybrid-cache' };
  const pool = new pg.Pool({ ...clientConfig, max: source.max ?? 10 });
  // An idle connection the server closes (restart, idle timeout) is an 'error' event on the pool;
  // without a listener Node.js would crash the process. The next query opens a new connection.
  pool.on('error', () => {});
  return { pool, owned: true, redact, clientConfig };
}
