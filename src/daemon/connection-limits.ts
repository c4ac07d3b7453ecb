import { type Server, type ServerOptions, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
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

const CLIENT_ERRORS: Record<string, { status: number; error: string; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    error: 'request_timeout',
    message:
      'the request did not arrive in time (DAEMON_HEADERS_TIMEOUT_MS for headers, DAEMON_REQUEST_TIMEOUT_MS for all of it); the connection is closed',
  },
  HPE_HEADER_OVERFLOW: { status: 431, error: 'headers_too_large', message: 'request headers are too large' },
};
const MALFORMED = { status: 400, error: 'bad_request', message: 'malformed HTTP request' };

/**
 * Answers what Node refuses before a request reaches Fastify (a missed deadline, oversized or
 * malformed headers) in the daemon's `{error, message}` shape, then closes the connection.
 */
export function clientErrorHandler(this: { log: FastifyBaseLogger }, err: Error, socket: Duplex): void {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'ECONNRESET' || socket.destroyed) return;
  const { status, error, message } = CLIENT_ERRORS[code] ?? MALFORMED;
  this.log.debug({ err }, `client connection closed: ${error}`);
  if (socket.writable) {
    const body = JSON.stringify({ error, message });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
