import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load-config.js';
import { trackAllowedMethods } from './allowed-methods.js';
import { bearerAuth } from './auth.js';
import { clientErrorHandler } from './client-errors.js';
import { connectionTimeouts, limitConnections } from './connection-limits.js';
import { errorHandler } from './errors.js';
import { createMetrics } from './metrics.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { threadRoutes } from './routes/threads.js';
import type { Wired } from './wire.js';

export interface ServerDeps {
  config: Config;
  wired: Pick<Wired, 'cache' | 'conversations'>;
  logger: Logger;
  /** True once shutdown has begun (health turns 503). */
  isClosing?: () => boolean;
}

/** The daemon's HTTP server, not yet listening. */
export function buildServer({ config, wired, logger, isClosing = () => false }: ServerDeps): FastifyInstance {
  const app = Fastify({
    // pino 10's Logger type differs from the pino 9 types Fastify declares; the runtime accepts both.
    loggerInstance: logger as unknown as FastifyBaseLogger,
    bodyLimit: config.daemon.bodyLimitBytes,
    // One access-log line per request comes from the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Thread ids are case-insensitive UUIDs; paths are matched as sent.
    routerOptions: { ignoreTrailingSlash: true },
    ...connectionTimeouts(config.daemon),
    clientErrorHandler,
  });

  const metrics = createMetrics(() => wired.cache.stats());
  limitConnections(app.server, config.daemon.maxConnections, metrics.connectionDropped);
  // Bodies are JSON only; anything else is answered 415.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(errorHandler);
  const allowedMethods = trackAllowedMethods(app);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = allowedMethods(path);
    if (allowed.length > 0) {
      reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send({
          error: 'method_not_allowed',
          message: `${request.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`,
        });
      return;
    }
    reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${path}` });
  });
  if (config.daemon.token) app.addHook('onRequest', bearerAuth(config.daemon.token));
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeRequest(request, reply);
    request.log.info(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
  });

  healthRoutes(app, { cache: wired.cache, backend: config.storage.backend, isClosing });
  metricsRoutes(app, metrics.registry);
  threadRoutes(app, wired.conversations);
  return app;
}
