import type { Server, ServerOptions } from 'node:http';
import type { Config } from '../config/load-config.js';

type Limits = Pick<
  Config['daemon'],
  'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'connectionTimeoutMs'
>;

/**
 * Fastify options that stop slow or idle clients from holding connections forever. Both request
 * deadlines are also given to Node's server directly: Fastify sets only `requestTimeout`, and
 * Node's header deadline must be set at construction.
 */
export function connectionTimeouts(limits: Limits): {
  requestTimeout: number;
  keepAliveTimeout: number;
  connectionTimeout: number;
  http: ServerOptions;
} {
  return {
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks both deadlines on this timer (default 30 s): check often enough that a
      // deadline is enforced close to when it passes, never more than once per 10 ms.
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
  };
}

/** Closes connections beyond `max` as soon as they are accepted, calling `onDrop` for each. */
export function limitConnections(server: Server, max: number, onDrop: () => void): void {
  server.maxConnections = max;
  server.on('drop', onDrop);
}
