/** The reference daemon: configuration, the conversation store, the HTTP server, signals. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../config/config-error.js';
import { type Config, loadConfig } from '../config/load-config.js';
import { createLogger } from './logger.js';
import { buildServer } from './server.js';
import { installSignalHandlers } from './shutdown.js';
import { listenFailureHint, openFailureHint } from './startup-errors.js';
import { wire } from './wire.js';

/** Loads `./.env` when present; variables already in the environment win. */
function loadDotEnv(): string | undefined {
  const path = resolve('.env');
  if (!existsSync(path)) return undefined;
  process.loadEnvFile(path);
  return path;
}

function describeStorage(config: Config): Record<string, unknown> {
  const { storage, cache } = config;
  return {
    backend: storage.backend,
    ...(storage.requested !== storage.backend ? { requested: storage.requested } : {}),
    ...(storage.backend === 'sqlite' ? { store: storage.storePath } : {}),
    ...(storage.supabase ? { supabaseUrl: storage.supabase.url } : {}),
    ...(storage.supabase?.listen ? { doorbellDatabase: databaseName(storage.supabase.listen) } : {}),
    ...(storage.postgres ? { database: databaseName(storage.postgres.connectionString) } : {}),
    durability: cache.durability,
    ...(cache.durability !== 'none' ? { outbox: cache.outboxPath } : {}),
  };
}

/** Host, port and database of a connection string, without its user or password (which stay secret). */
function databaseName(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.host}${url.pathname}`;
  } catch {
    return '(unparsable connection string)';
  }
}

/** Starts the daemon; a failure to start is logged as one `fatal` line and sets exit code 1. */
export async function startDaemon(): Promise<void> {
  const bootLogger = createLogger('info');
  let envFile: string | undefined;
  let loaded: ReturnType<typeof loadConfig>;
  try {
    envFile = loadDotEnv();
    loaded = loadConfig(process.env);
  } catch (error) {
    bootLogger.fatal(error instanceof ConfigError ? error.message : { err: error }, 'cannot start');
    process.exitCode = 1;
    return;
  }
  const { config, warnings } = loaded;
  const logger = createLogger(config.logLevel);
  if (envFile) logger.info({ envFile }, 'loaded environment file');
  for (const warning of warnings) logger.warn({ variable: warning.variable }, warning.message);

  let wired: Awaited<ReturnType<typeof wire>>;
  try {
    wired = await wire(config, logger);
  } catch (error) {
    const hint = openFailureHint(error, config);
    logger.fatal({ err: error, ...describeStorage(config), hint }, 'cannot open the conversation store');
    process.exitCode = 1;
    return;
  }

  let closing = false;
  const app = buildServer({ config, wired, logger, isClosing: () => closing });
  const deps = { app, wired, config, logger, onClosing: () => (closing = true) };
  try {
    await app.listen({ host: config.daemon.host, port: config.daemon.port });
  } catch (error) {
    const hint = listenFailureHint(error, config);
    logger.fatal({ err: error, host: config.daemon.host, port: config.daemon.port, hint }, 'cannot listen');
    await wired.close({ timeoutMs: config.daemon.shutdownTimeoutMs }).catch(() => {});
    process.exitCode = 1;
    return;
  }
  installSignalHandlers(deps);
  const bound = app.server.address();
  const address =
    typeof bound === 'object' && bound
      ? `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
      : bound;
  logger.info(
    {
      address,
      port: typeof bound === 'object' && bound ? bound.port : config.daemon.port,
      ...describeStorage(config),
      auth: config.daemon.token ? 'bearer token' : 'none (loopback only)',
      threadTtlHours: config.conversation.timeoutHours,
      maxTurns: config.conversation.maxTurns,
    },
    'listening',
  );
}
