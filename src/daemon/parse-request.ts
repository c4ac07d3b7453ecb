import type { z } from 'zod';
import { ThreadIdSchema } from '../conversation/schemas.js';
import { nestsDeeperThan } from './json-depth.js';

/**
 * Deepest nesting of objects and arrays accepted in a request body (the body itself is level 1).
 * Far beyond what a tool's context needs, and far from the depth at which serialising a thread,
 * or a chain of threads, would exhaust the stack.
 */
export const MAX_BODY_DEPTH = 64;

/** A request the client must fix; answered with its status and message. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Parses a body or throws a 400 naming each offending field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === undefined || body === null) {
    throw new HttpError(400, 'invalid_body', 'request body required: send a JSON object');
  }
  if (nestsDeeperThan(body, MAX_BODY_DEPTH)) {
    throw new HttpError(
      400,
      'body_too_deep',
      `request body nests objects and arrays more than ${MAX_BODY_DEPTH} levels deep (the limit, counting the body as level 1)`,
    );
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : 'body';
    return `${where}: ${issue.message}`;
  });
  throw new HttpError(400, 'invalid_body', `invalid request body: ${problems.join('; ')}`);
}

/** The `:id` path parameter, which must be a UUID v4. */
export function parseThreadId(id: string): string {
  if (!ThreadIdSchema.safeParse(id).success) {
    throw new HttpError(400, 'invalid_thread_id', `thread id must be a UUID v4, got ${JSON.stringify(id)}`);
  }
  return id;
}
