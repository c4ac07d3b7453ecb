import { type Logger, pino } from 'pino';
import { z } from 'zod';
import type { Storage } from '../storage/contract/types.js';
import { closestName } from './closest-name.js';
import { ValidationError } from './errors.js';
import {
  CACHE_OPTION_DEFAULTS as DEFAULTS,
  DURABILITIES,
  ENTRY_HEADROOM_BYTES,
  limitsTooSmallForLargestEntry,
} from './option-defaults.js';
import type { Durability, HybridCacheOptions } from './types.js';

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
    batchSize: positiveInt.default(DEFAULTS.flush.batchSize),
    intervalMs: nonNegative.default(DEFAULTS.flush.intervalMs),
    concurrency: positiveInt.default(DEFAULTS.flush.concurrency),
  }),
  retry: z.strictObject({
    baseMs: positiveInt.default(DEFAULTS.retry.baseMs),
    maxMs: positiveInt.default(DEFAULTS.retry.maxMs),
  }),
  breaker: z.strictObject({
    failureThreshold: positiveInt.default(DEFAULTS.breaker.failureThreshold),
    halfOpenAfterMs: positiveInt.default(DEFAULTS.breaker.halfOpenAfterMs),
  }),
  feed: z.strictObject({
    pollIntervalMs: positiveInt.default(DEFAULTS.feed.pollIntervalMs),
    pageSize: positiveInt.default(DEFAULTS.feed.pageSize),
  }),
  outbox: z.strictObject({
    path: z.string().min(1).optional(),
    durability: z.enum(DURABILITIES).default(DEFAULTS.outbox.durability),
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
  maxEntries: positiveInt.default(DEFAULTS.maxEntries),
  maxBytes: positiveInt.default(DEFAULTS.maxBytes),
  maxValueBytes: positiveInt.default(DEFAULTS.maxValueBytes),
  maxPendingBytes: positiveInt.default(DEFAULTS.maxPendingBytes),
  defaultTtlMs: nonNegative.default(DEFAULTS.defaultTtlMs),
  readTimeoutMs: positiveInt.default(DEFAULTS.readTimeoutMs),
  writeTimeoutMs: positiveInt.default(DEFAULTS.writeTimeoutMs),
  maxClockAheadMs: positiveInt.default(DEFAULTS.maxClockAheadMs),
  maxStalenessMs: positiveInt.default(DEFAULTS.maxStalenessMs),
  feed: z.union([z.literal(false), nestedSchemas.feed]).default(DEFAULTS.feed),
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
  if (resolved.feed !== false && resolved.maxStalenessMs <= resolved.feed.pollIntervalMs) {
    throw new ValidationError(
      `maxStalenessMs (${resolved.maxStalenessMs}) must be greater than feed.pollIntervalMs (${resolved.feed.pollIntervalMs}), or every read between two polls would ask the store`,
    );
  }
  const tooSmall = limitsTooSmallForLargestEntry(resolved);
  if (tooSmall.includes('maxBytes')) {
    throw new ValidationError(
      `maxBytes (${resolved.maxBytes}) must leave room for the largest entry: maxValueBytes (${resolved.maxValueBytes}) + ${ENTRY_HEADROOM_BYTES} bytes of key and overhead`,
    );
  }
  if (tooSmall.includes('maxPendingBytes')) {
    throw new ValidationError(
      `maxPendingBytes (${resolved.maxPendingBytes}) must leave room for the largest write: maxValueBytes (${resolved.maxValueBytes}) + ${ENTRY_HEADROOM_BYTES} bytes of key and overhead`,
    );
  }
  return {
    ...resolved,
    logger: resolved.logger ?? pino({ name: 'hybrid-cache', level: 'warn' }, pino.destination(2)),
  };
}
