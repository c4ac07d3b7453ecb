import type { FastifyInstance } from 'fastify';
import type { HybridCache } from '../../cache/hybrid-cache.js';
import type { Backend } from '../../config/load-config.js';

export interface HealthDeps {
  cache: HybridCache;
  backend: Backend;
  /** True once shutdown has begun. */
  isClosing(): boolean;
}

/**
 * `GET /healthz`: 200 while the daemon accepts writes, whatever the remote store's state (that is
 * reported in `store`, and whether other instances' changes are being followed in `feed`); 503 when
 * the daemon itself cannot take writes (outbox failing, closing).
 */
export function healthRoutes(app: FastifyInstance, deps: HealthDeps): void {
  app.get('/healthz', async (_request, reply) => {
    const stats = deps.cache.stats();
    const body = {
      status: 'ok' as 'ok' | 'unavailable',
      store: stats.health,
      backend: deps.backend,
      pending: stats.pending,
      pendingBytes: stats.pendingBytes,
      oldestPendingAgeMs: stats.oldestPendingAgeMs,
      deadLetters: stats.deadLetters,
      outboxWritable: stats.outboxWritable,
      outboxHeals: stats.outboxHeals,
      clockAheadMs: stats.clockAheadMs,
      feed: {
        state: stats.feedState,
        lagMs: stats.feedLagMs,
        doorbell: stats.doorbell,
        possiblyStaleReads: stats.possiblyStaleReads,
        ...(stats.feedState === 'behind' || stats.feedState === 'starting'
          ? {
              reason: `other instances' changes have not been read for ${stats.feedLagMs} ms (the store is slow or unreachable): reads revalidate, and answer from memory, possibly stale, while the store cannot be reached`,
            }
          : stats.doorbell === 'broken'
            ? {
                reason:
                  "the doorbell cannot hear (LISTEN through a transaction-mode pooler, or a listening connection refused for its settings: see the logs): other instances' changes are read at the feed's poll interval",
              }
            : {}),
      },
      ...(stats.clockAheadMs > 0
        ? {
            warning: `the wall clock runs ${stats.clockAheadMs} ms ahead of the time versions use and is not trusted; fix the host's clock (see maxClockAheadMs)`,
          }
        : {}),
    };
    if (deps.isClosing() || !deps.cache.isOpen) {
      return reply.code(503).send({ ...body, status: 'unavailable', reason: 'the daemon is shutting down' });
    }
    if (!stats.outboxWritable) {
      const cause = deps.cache.outboxError?.message ?? 'unknown error';
      return reply
        .code(503)
        .send({ ...body, status: 'unavailable', reason: `the local outbox cannot be written: ${cause}` });
    }
    return body;
  });
}
