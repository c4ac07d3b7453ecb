import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Routes reachable without the token, so probes need no secret. They reveal no thread data. */
const PUBLIC_ROUTES = new Set(['/healthz']);

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Compares in time independent of where the strings differ (and of their lengths). */
export function tokensMatch(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/**
 * An `onRequest` hook requiring `Authorization: Bearer <token>` on every non-public route. A refused
 * request's connection is closed after the 401, so an unauthenticated client cannot keep it open
 * by trickling a body the daemon never reads.
 */
export function bearerAuth(token: string) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (PUBLIC_ROUTES.has(request.routeOptions.url ?? '')) return;
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) {
      await reply.code(401).header('www-authenticate', 'Bearer').header('connection', 'close').send({
        error: 'unauthorized',
        message: 'missing bearer token: send "Authorization: Bearer <DAEMON_TOKEN>"',
      });
      return;
    }
    if (!tokensMatch(match[1], token)) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer error="invalid_token"')
        .header('connection', 'close')
        .send({ error: 'unauthorized', message: 'invalid bearer token' });
    }
  };
}
