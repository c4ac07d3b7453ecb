import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load-config.js';
import type { Wired } from './wire.js';

export interface ShutdownDeps {
  app: FastifyInstance;
  wired: Pick<Wired, 'close'>;
  config: Config;
  logger: Logger;
  /** Called first, so health checks turn 503 while draining. */
  onClosing(): void;
}

/**
 * Stops the daemon: no new connections (in-flight requests finish), then the cache drains to the
 * store until the deadline; what is left stays in the outbox. Resolves with the exit code.
 */
export async function shutdown(deps: ShutdownDeps, reason: string): Promise<number> {
  const { app, wired, config, logger } = deps;
  deps.onClosing();
  const timeoutMs = config.daemon.shutdownTimeoutMs;
  logger.info({ reason, timeoutMs }, 'shutting down: refusing new requests, flushing writes to the store');
  let code = 0;
  try {
    await app.close();
  } catch (error) {
    logger.error({ err: error }, 'closing the HTTP server failed');
    code = 1;
  }
  try {
    const { pending, drained } = await wired.close({ timeoutMs });
    if (pending === 0) {
      logger.info({ drained }, 'every write reached the store');
    } else if (config.cache.durability === 'none') {
      logger.warn(
        { pending },
        `${pending} write(s) had not reached the store and are lost (CACHE_DURABILITY=none)`,
      );
    } else {
      logger.warn(
        { pending, outbox: config.cache.outboxPath },
        `${pending} write(s) had not reached the store by the deadline; they stay in the outbox and flush on the next start`,
      );
    }
  } catch (error) {
    logger.error({ err: error }, 'closing the cache failed');
    code = 1;
  }
  logger.info({ code }, 'stopped');
  return code;
}

/** Runs `shutdown` once on SIGTERM or SIGINT, then exits; a second signal only logs. */
export function installSignalHandlers(deps: ShutdownDeps): void {
  let started = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (started) {
      deps.logger.warn({ signal }, 'shutdown already in progress');
      return;
    }
    started = true;
    void shutdown(deps, signal).then((code) => process.exit(code));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
