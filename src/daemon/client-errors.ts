import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';

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
