import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  BackpressureError,
  ClosedError,
  CorruptValueError,
  OutboxError,
  StorageUnavailableError,
  ValidationError,
  ValueTooLargeError,
} from '../cache/errors.js';
import { threadIdOfKey } from '../conversation/conversation-store.js';
import { ParentThreadNotFoundError, ThreadNotFoundError, TurnLimitError } from '../conversation/errors.js';
import { HttpError } from './parse-request.js';

export interface ErrorBody {
  error: string;
  message: string;
}

interface Mapped {
  status: number;
  body: ErrorBody;
  retryAfterSeconds?: number;
  /** How a 5xx answer is logged: `error` when an operator must act, else `warn`. */
  logLevel?: 'warn' | 'error';
}

/** How each error a route can meet is answered. Unknown errors are 500s and are logged. */
export function mapError(error: unknown): Mapped | undefined {
  if (error instanceof HttpError)
    return { status: error.statusCode, body: { error: error.code, message: error.message } };
  if (error instanceof ThreadNotFoundError) {
    return { status: 404, body: { error: 'thread_not_found', message: error.message } };
  }
  // 422, not 404: the route exists; what the body refers to does not.
  if (error instanceof ParentThreadNotFoundError) {
    return { status: 422, body: { error: 'parent_thread_not_found', message: error.message } };
  }
  if (error instanceof TurnLimitError)
    return { status: 409, body: { error: 'turn_limit', message: error.message } };
  // The daemon's setting is CACHE_MAX_VALUE_BYTES; the library's message names its own option.
  if (error instanceof ValueTooLargeError) {
    return {
      status: 400,
      body: {
        error: 'invalid_value',
        message: `the thread would be ${error.bytes} bytes serialized; the limit (CACHE_MAX_VALUE_BYTES) is ${error.maxValueBytes}`,
      },
    };
  }
  if (error instanceof ValidationError)
    return { status: 400, body: { error: 'invalid_value', message: error.message } };
  if (error instanceof BackpressureError) {
    return {
      status: 503,
      retryAfterSeconds: 1,
      body: {
        error: 'backpressure',
        message: `${error.message} (the remote store is behind; retry after a short wait)`,
      },
    };
  }
  if (error instanceof StorageUnavailableError) {
    return {
      status: 503,
      retryAfterSeconds: 5,
      body: {
        error: 'storage_unavailable',
        message: `the conversation store is unreachable and this thread is not in memory; retry later (${error.message})`,
      },
    };
  }
  if (error instanceof ClosedError) {
    return { status: 503, body: { error: 'closing', message: 'the daemon is shutting down' } };
  }
  // 500: the fault is the server's data, not the request, and retrying will not mend it. The
  // thread is named because the damaged one may be another than the one asked for (a parent).
  if (error instanceof CorruptValueError) {
    const threadId = threadIdOfKey(error.key);
    return {
      status: 500,
      logLevel: 'error',
      body: {
        error: 'corrupt_thread',
        message: `the stored thread '${threadId}' is damaged (not valid JSON) and cannot be read; delete it (DELETE /v1/threads/${threadId}) or restore the store from a backup`,
      },
    };
  }
  if (error instanceof OutboxError) {
    return {
      status: 503,
      body: { error: 'outbox_unwritable', message: `the local outbox refused the write: ${error.message}` },
    };
  }
  return undefined;
}

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_content_length',
};

/** What to tell a client whose request Fastify refused before any route ran. */
function clientErrorMessage(code: string, error: FastifyError, request: FastifyRequest): string {
  switch (code) {
    case 'invalid_json':
      return `request body is not valid JSON: ${error.message}`;
    case 'body_too_large':
      return `request body is larger than the limit of ${request.routeOptions.bodyLimit} bytes`;
    case 'unsupported_media_type': {
      const sent = request.headers['content-type']?.slice(0, 100) ?? 'no content-type';
      return `send the body as JSON with "content-type: application/json" (got ${JSON.stringify(sent)})`;
    }
    default:
      return error.message;
  }
}

/** Fastify's error handler: one JSON shape `{error, message}` for every failure. */
export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const mapped = mapError(error);
  if (mapped) {
    if (mapped.retryAfterSeconds !== undefined) reply.header('retry-after', String(mapped.retryAfterSeconds));
    if (mapped.status >= 500) request.log[mapped.logLevel ?? 'warn']({ err: error }, mapped.body.message);
    reply.code(mapped.status).send(mapped.body);
    return;
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = FASTIFY_CODES[error.code] ?? 'bad_request';
    const message = clientErrorMessage(code, error, request);
    reply.code(status).send({ error: code, message });
    return;
  }
  request.log.error({ err: error }, 'request failed');
  reply.code(500).send({ error: 'internal', message: 'internal error; see the daemon log' });
}
