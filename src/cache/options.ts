import { type Logger, pino } from 'pino';
import { z } from 'zod';
import type { Storage } from '../storage/types.js';
import { ValidationError } from './errors.js';
import { ENTRY_OVERHEAD_BYTES } from './memory-tier.js';
import type { Durability, HybridCacheOptions } from './types.js';
import { MAX_KEY_BYTES } from './validation.js';

const positiveInt = z.number().int().positive();
const nonNegative = z.number().finite().nonnegative();

const optionsSchema = z.object({
  maxEntries: positiveInt.default(10_000),
  maxBytes: positiveInt.default(256 * 2 ** 20),
  maxValueBytes: positiveInt.default(4 * 2 ** 20),
  maxPendingBytes: positiveInt.default(64 * 2 ** 20),
  defaultTtlMs: nonNegative.default(0),
  readTimeoutMs: positiveInt.default(5_000),
  writeTimeoutMs: positiveInt.default(15_000),
  flush: z
    .object({
      batchSize: positiveInt.default(200),
      intervalMs: nonNegative.default(20),
      concurrency: positiveInt.default(4),
    })
    .prefault({}),
  retry: z
    .object({ baseMs: positiveInt.default(100), maxMs: positiveInt.default(30_000) })
    .prefault({})
    .refine((r) => r.maxMs >= r.baseMs, 'retry.maxMs must be >= retry.baseMs'),
  breaker: z
    .object({ failureThreshold: positiveInt.default(5), halfOpenAfterMs: positiveInt.default(5_000) })
    .prefault({}),
  outbox: z
    .object({
      path: z.string().min(1).optional(),
      durability: z.enum(['none', 'process', 'fsync']).default('process'),
      maxFileBytes: positiveInt.optional(),
    })
    .prefault({}),
});

export type ResolvedOptions = z.output<typeof optionsSchema> & {
  storage: Storage;
  logger: Logger;
  outbox: { path?: string; durability: Durability; maxFileBytes?: number };
};

export function resolveOptions(options: HybridCacheOptions): ResolvedOptions {
  if (
    !options ||
    typeof options.storage?.getMany !== 'function' ||
    typeof options.storage.apply !== 'function' ||
    typeof options.storage.highWaterMark !== 'function'
  ) {
    throw new ValidationError(
      'options.storage must implement the Storage interface (getMany, apply and highWaterMark)',
    );
  }
  const { storage, logger, ...rest } = options;
  const parsed = optionsSchema.safeParse(rest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ValidationError(`invalid option ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  const resolved = parsed.data;
  if (resolved.outbox.durability !== 'none' && !resolved.outbox.path) {
    throw new ValidationError(
      `outbox.path is required for durability '${resolved.outbox.durability}' (or set outbox.durability: 'none')`,
    );
  }
  if (resolved.maxValueBytes + MAX_KEY_BYTES + ENTRY_OVERHEAD_BYTES > resolved.maxBytes) {
    throw new ValidationError(
      `maxBytes (${resolved.maxBytes}) must leave room for the largest entry: maxValueBytes (${resolved.maxValueBytes}) + ${MAX_KEY_BYTES + ENTRY_OVERHEAD_BYTES} bytes of key and overhead`,
    );
  }
  // A write counts its key and overhead against the backlog too: a largest value with a longest key
  // must fit in an empty backlog, or it would be refused with BackpressureError on every retry.
  if (resolved.maxValueBytes + MAX_KEY_BYTES + ENTRY_OVERHEAD_BYTES > resolved.maxPendingBytes) {
    throw new ValidationError(
      `maxPendingBytes (${resolved.maxPendingBytes}) must leave room for the largest write: maxValueBytes (${resolved.maxValueBytes}) + ${MAX_KEY_BYTES + ENTRY_OVERHEAD_BYTES} bytes of key and overhead`,
    );
  }
  return {
    ...resolved,
    storage,
    logger: logger ?? pino({ name: 'hybrid-cache', level: 'warn' }, pino.destination(2)),
  };
}
