import { z } from 'zod';
import type { CreateThreadInput, NewTurn } from '../conversation/schemas.js';
import { RoleSchema, ThreadIdSchema } from '../conversation/schemas.js';
import { nestsDeeperThan } from './json-depth.js';

/**
 * Deepest nesting of objects and arrays accepted in a request body (the body itself is level 1).
 * Far beyond what a tool's context needs, and far from the depth at which serialising a thread,
 * or a chain of threads, would exhaust the stack.
 */
export const MAX_BODY_DEPTH = 64;

/** HTTP bodies are snake_case like the thread JSON the API returns. Unknown fields are refused. */
export const CreateThreadBody = z
  .strictObject({
    tool_name: z.string().min(1),
    initial_context: z.record(z.string(), z.unknown()).optional(),
    parent_thread_id: ThreadIdSchema.nullish(),
  })
  .transform(
    (body): CreateThreadInput => ({
      toolName: body.tool_name,
      ...(body.initial_context ? { initialContext: body.initial_context } : {}),
      ...(body.parent_thread_id ? { parentThreadId: body.parent_thread_id } : {}),
    }),
  );

export const AddTurnBody = z
  .strictObject({
    role: RoleSchema,
    content: z.string(),
    files: z.array(z.string()).nullish(),
    images: z.array(z.string()).nullish(),
    tool_name: z.string().nullish(),
    model_provider: z.string().nullish(),
    model_name: z.string().nullish(),
    model_metadata: z.record(z.string(), z.unknown()).nullish(),
  })
  .transform((body): NewTurn => {
    const turn: NewTurn = { role: body.role, content: body.content };
    if (body.files) turn.files = body.files;
    if (body.images) turn.images = body.images;
    if (body.tool_name) turn.toolName = body.tool_name;
    if (body.model_provider) turn.modelProvider = body.model_provider;
    if (body.model_name) turn.modelName = body.model_name;
    if (body.model_metadata) turn.modelMetadata = body.model_metadata;
    return turn;
  });

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
