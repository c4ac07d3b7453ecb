import { type Logger, pino } from 'pino';
import type { LogLevel } from '../config/load-config.js';

/** Log paths that may carry secrets; pino replaces their values with `[redacted]`. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'request.headers.authorization',
  'headers.authorization',
  'authorization',
  'SUPABASE_KEY',
  'DATABASE_URL',
  'DAEMON_TOKEN',
  'env.SUPABASE_KEY',
  'env.DATABASE_URL',
  'env.DAEMON_TOKEN',
  'supabase.key',
  '*.supabase.key',
  'config.storage.supabase.key',
  'supabase.listen',
  '*.supabase.listen',
  'config.storage.supabase.listen',
  'postgres.connectionString',
  '*.postgres.connectionString',
  'config.storage.postgres.connectionString',
  'connectionString',
  'config.daemon.token',
  'daemon.token',
  'token',
];

/** The daemon's logger: JSON lines on stdout, secrets redacted. */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options = {
    name: 'hybrid-cache-daemon',
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
