import { type Logger, pino } from 'pino';
import { z } from 'zod';
import type { Storage } from '../storage/types.js';
import { closestName } from './closest-name.js';
import { ValidationError } from './errors.js';
import { ENTRY_OVERHEAD_BYTES } from './memory-tier.js';
import type { Durability, HybridCacheOptions } from './types.js';
import { MAX_KEY_BYTES } from './validation.js';

const positiveInt = z.number().int().positive();
const nonNegative = z.number().finite().nonnegative();

const LOGGER_METHODS = ['debug', 'info', 'warn', 'error'] as const;

const isStorage = (value: unknown): value is Storage =>
  typeof (value as Storage | undefined)?.getMany === 'function' &&
  typeof (value as Storage | undefined)?.apply === 'function' &&
  typeof (value as Storage | undefined)?.highWaterMark === 'function';

const isLogger = (value: unknown): value is Logger =>
  typeof value === 'object' &&
  value !== null &&
  LOGGER_METHODS.every((method) => typeof (value as Record<string, unknown>)[method] === 'function');

// Objects are strict: a misspelt key is an error, not a setting silently left at its default.
const nestedSchemas = {
  flush: z.strictObject({
    batchSize: positiveInt.default(200),
    intervalMs: nonNegative.default(20),
    concurrency: positiveInt.default(4),
  }),
  retry: z.strictObject({ baseMs: positiveInt.default(100), maxMs: positiveInt.default(30_000) }),
  breaker: z.strictObject({
    failureThreshold: positiveInt.default(5),
    halfOpenAfterMs: positiveInt.default(5_000),
  }),
  outbox: z.strictObject({
    path: z.string().min(1).optional(),
    durability: z.enum(['none', 'process', 'fsync']).default('process'),
    maxFileBytes: positiveInt.optional(),
  }),
};

const optionsSchema = z.strictObject({
  storage: z.custom<Storage>(
    isStorage,
    'must implement the Storage interface (getMany, apply and highWaterMark)',
  ),
  logger: z
    .custom<Logger>(isLogger, `must be a pino logger (an object with ${LOGGER_METHODS.join(', ')} methods)`)
    .optional(),
  maxEntries: positiveInt.default(10_000),
  maxBytes: positiveInt.default(256 * 2 ** 20),
  maxValueBytes: positiveInt.default(4 * 2 ** 20),
  maxPendingBytes: positiveInt.default(64 * 2 ** 20),
  defaultTtlMs: nonNegative.default(0),
  readTimeoutMs: positiveInt.default(5_000),
  writeTimeoutMs: positiveInt.default(15_000),
  flush: nestedSchemas.flush.prefault({}),
  retry: nestedSchemas.retry
    .prefault({})
    .refine((r) => r.maxMs >= r.baseMs, 'retry.maxMs must be >= retry.baseMs'),
  breaker: nestedSchemas.breaker.prefault({}),
  outbox: nestedSchemas.outbox.prefault({}),
});

export type ResolvedOptions = z.output<typeof optionsSchema> & {
  storage: Storage;
  logger: Logger;
  outbox: { path?: string; durability: Durability; maxFileBytes?: number };
};

/** Option names valid at `path` (the top level, or inside one of the nested objects). */
function optionNamesAt(path: readonly string[]): string[] {
  if (path.length === 0) return Object.keys(optionsSchema.shape);
  const nested = nestedSchemas[path[0] as keyof typeof nestedSchemas];
  return nested && path.length === 1 ? Object.keys(nested.shape) : [];
}

function unknownOption(path: readonly string[], key: string): string {
  const prefix = path.map((segment) => `${segment}.`).join('');
  const valid = optionNamesAt(path);
  const suggestion = closestName(key, valid);
  return suggestion
    ? `unknown option ${prefix}${key} (did you mean ${prefix}${suggestion}?)`
    : `unknown option ${prefix}${key}; valid options${path.length > 0 ? ` in ${path.join('.')}` : ''}: ${valid.join(', ')}`;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => unknownOption(path, key)).join('; ');
  return `invalid option ${path.join('.') || '(root)'}: ${issue.message}`;
}

export function resolveOptions(options: HybridCacheOptions): ResolvedOptions {
  if (!options || typeof options !== 'object') {
    throw new ValidationError(
      'options must be an object whose storage implements the Storage interface (getMany, apply and highWaterMark)',
    );
  }
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new ValidationError(parsed.error.issues.map(describeIssue).join('; '));
  const resolved = parsed.data;
  if (resolved.outbox.durability !== 'none' && !resolved.outbox.path) {
    throw new ValidationError(
      `outbox.path is required for durability '${resolved.outbox.durability}' (or set outbox.durability: 'none')`,
    );
  }
  if (resolved.outbox.durability !== 'none' && resolved.outbox.path === ':memory:') {
    throw new ValidationError(
      `outbox.path ':memory:' is an in-memory database: writes acknowledged with durability '${resolved.outbox.durability}' would still be lost with the process; give a file path (or set outbox.durability: 'none')`,
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
    logger: resolved.logger ?? pino({ name: 'hybrid-cache', level: 'warn' }, pino.destination(2)),
  };
}
