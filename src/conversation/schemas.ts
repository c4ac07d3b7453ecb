import { z } from 'zod';

/**
 * The JSON the original Python daemon stored per thread (`ThreadContext.model_dump_json()`),
 * snake_case, in the same field order. Reading tolerates threads written before a field existed
 * (pydantic's `None` defaults); everything written by this module has every field.
 */

export const ThreadIdSchema = z.uuidv4();

export const RoleSchema = z.enum(['user', 'assistant']);

const stringList = z.array(z.string()).nullable().default(null);
const metadata = z.record(z.string(), z.unknown()).nullable().default(null);

export const ConversationTurnSchema = z.object({
  role: RoleSchema,
  content: z.string(),
  timestamp: z.string(),
  files: stringList,
  images: stringList,
  tool_name: z.string().nullable().default(null),
  model_provider: z.string().nullable().default(null),
  model_name: z.string().nullable().default(null),
  model_metadata: metadata,
});

export const ThreadContextSchema = z.object({
  thread_id: z.string(),
  parent_thread_id: z.string().nullable().default(null),
  created_at: z.string(),
  last_updated_at: z.string(),
  tool_name: z.string(),
  turns: z.array(ConversationTurnSchema),
  initial_context: z.record(z.string(), z.unknown()),
});

/**
 * Inputs use the field names of what they produce: a turn as callers submit it (through
 * `addTurn` or the HTTP API) is a stored turn without its timestamp, which the store adds.
 * Absent and `null` fields are stored as `null`. Unknown keys are refused.
 */
export const NewTurnSchema = z.strictObject(ConversationTurnSchema.omit({ timestamp: true }).shape);

/** Input of `createThread`. `parent_thread_id` links a continuation to the thread it came from. */
export const CreateThreadInputSchema = z.strictObject({
  tool_name: ThreadContextSchema.shape.tool_name.min(1),
  initial_context: ThreadContextSchema.shape.initial_context.optional(),
  parent_thread_id: ThreadIdSchema.nullish(),
} satisfies Partial<Record<keyof ThreadContext, z.ZodType>>);

export type Role = z.infer<typeof RoleSchema>;
export type ConversationTurn = z.output<typeof ConversationTurnSchema>;
export type ThreadContext = z.output<typeof ThreadContextSchema>;
export type NewTurn = z.input<typeof NewTurnSchema>;
export type CreateThreadInput = z.input<typeof CreateThreadInputSchema>;
