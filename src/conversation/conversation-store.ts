import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ValidationError } from '../cache/errors.js';
import { ParentThreadNotFoundError, ThreadNotFoundError, TurnLimitError } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import { DEFAULT_MAX_TURNS, DEFAULT_TIMEOUT_HOURS, HOUR_MS } from './option-defaults.js';
import {
  type ConversationTurn,
  ConversationTurnSchema,
  type CreateThreadInput,
  CreateThreadInputSchema,
  type NewTurn,
  NewTurnSchema,
  type ThreadContext,
  ThreadContextSchema,
  ThreadIdSchema,
} from './schemas.js';
import { pythonUtcTimestamp } from './timestamp.js';

/** What the conversation store needs from a cache; the hybrid cache satisfies it. */
export interface ThreadCache {
  get(key: string): Promise<unknown | undefined>;
  getWithItems(key: string): Promise<{ value: unknown; items: unknown[] } | undefined>;
  set(key: string, value: unknown, opts?: { ttlMs?: number; newKey?: boolean }): Promise<void>;
  append(key: string, item: unknown, opts?: { ttlMs?: number }): Promise<void>;
  delete(key: string): Promise<void>;
}

export interface ConversationStoreOptions {
  cache: ThreadCache;
  /** Lifetime of a thread after its last change. Default 24 h. */
  ttlMs?: number;
  /** Most turns a thread holds. Default 50. */
  maxTurns?: number;
}

/** Longest parent chain `getThreadChain` follows, as in the original. */
export const MAX_CHAIN_DEPTH = 20;

/** Request parameters the original never stored with a thread. */
const DROPPED_CONTEXT_KEYS = new Set(['temperature', 'thinking_mode', 'model', 'continuation_id']);

const THREAD_KEY_PREFIX = 'thread:';

/** Cache key of a thread; the original daemon's key scheme. */
export function threadKey(threadId: string): string {
  return `${THREAD_KEY_PREFIX}${threadId.toLowerCase()}`;
}

/** The thread id in a cache key made by `threadKey`; any other key as it is. */
export function threadIdOfKey(key: string): string {
  return key.startsWith(THREAD_KEY_PREFIX) ? key.slice(THREAD_KEY_PREFIX.length) : key;
}

export function isThreadId(value: unknown): value is string {
  return ThreadIdSchema.safeParse(value).success;
}

/**
 * Conversation threads over a cache. A thread is its header (the original Python daemon's
 * ThreadContext JSON with the turns it was created with: none for threads created here, all of
 * them for threads written whole by earlier releases) plus one appended item per turn added since,
 * so adding a turn costs O(turn) and turns from several processes are never lost. `getThread`
 * returns the original JSON: the header's turns, then the appended ones in their one order.
 * Errors of the cache (for example `StorageUnavailableError`) propagate: an unreachable store is
 * never reported as a missing thread.
 */
export class ConversationStore {
  readonly ttlMs: number;
  readonly maxTurns: number;
  readonly #cache: ThreadCache;
  /** Serialises read-modify-write per thread so concurrent turns are not lost. */
  readonly #threadLocks = new KeyedMutex();

  constructor(options: ConversationStoreOptions) {
    this.#cache = options.cache;
    this.ttlMs = options.ttlMs ?? DEFAULT_TIMEOUT_HOURS * HOUR_MS;
    this.maxTurns = options.maxTurns ?? DEFAULT_MAX_TURNS;
    if (!Number.isFinite(this.ttlMs) || this.ttlMs <= 0) {
      throw new RangeError(`ttlMs must be a positive number of milliseconds, got ${this.ttlMs}`);
    }
    if (!Number.isSafeInteger(this.maxTurns) || this.maxTurns <= 0) {
      throw new RangeError(`maxTurns must be a positive integer, got ${this.maxTurns}`);
    }
  }

  /**
   * Creates an empty thread and returns its id (UUID v4).
   * @throws ValidationError for malformed input.
   * @throws ParentThreadNotFoundError when `parent_thread_id` names no live thread: a continuation
   *   of a thread that is gone would silently start a chain with a missing link.
   */
  async createThread(input: CreateThreadInput): Promise<string> {
    const {
      tool_name,
      initial_context = {},
      parent_thread_id: parentId,
    } = parseInput(CreateThreadInputSchema, input);
    if (parentId && !(await this.getThread(parentId))) {
      throw new ParentThreadNotFoundError(parentId);
    }
    const threadId = randomUUID();
    const now = pythonUtcTimestamp();
    const thread: ThreadContext = {
      thread_id: threadId,
      parent_thread_id: parentId?.toLowerCase() ?? null,
      created_at: now,
      last_updated_at: now,
      tool_name,
      turns: [],
      initial_context: Object.fromEntries(
        Object.entries(initial_context).filter(([key]) => !DROPPED_CONTEXT_KEYS.has(key)),
      ),
    };
    await this.#cache.set(threadKey(threadId), thread, { ttlMs: this.ttlMs, newKey: true });
    return threadId;
  }

  /** The thread, or `undefined` when the id is not a UUID v4, or the thread is missing, expired or unreadable. */
  async getThread(threadId: string): Promise<ThreadContext | undefined> {
    if (!isThreadId(threadId)) return undefined;
    const stored = await this.#cache.getWithItems(threadKey(threadId));
    if (!stored) return undefined;
    const header = ThreadContextSchema.safeParse(stored.value);
    const turns = z.array(ConversationTurnSchema).safeParse(stored.items);
    if (!header.success || !turns.success) return undefined;
    if (header.data.thread_id.toLowerCase() !== threadId.toLowerCase()) return undefined;
    return withTurns(header.data, turns.data);
  }

  /**
   * Appends a turn and restarts the thread's TTL. Returns the updated thread.
   * @throws ValidationError for a malformed turn, ThreadNotFoundError, TurnLimitError.
   */
  async addTurn(threadId: string, turn: NewTurn): Promise<ThreadContext> {
    const input = parseInput(NewTurnSchema, turn);
    if (!isThreadId(threadId)) throw new ThreadNotFoundError(threadId);
    return this.#threadLocks.run(threadId.toLowerCase(), async () => {
      const key = threadKey(threadId);
      const stored = await this.#cache.getWithItems(key);
      // Only the header is validated here: turns were validated when appended, and re-validating
      // every turn on every turn would make a turn's cost grow with its thread.
      const header = stored && ThreadContextSchema.safeParse(stored.value);
      if (!stored || !header?.success || header.data.thread_id.toLowerCase() !== threadId.toLowerCase()) {
        throw new ThreadNotFoundError(threadId);
      }
      if (header.data.turns.length + stored.items.length >= this.maxTurns) {
        throw new TurnLimitError(threadId, this.maxTurns);
      }
      // Parsing puts the fields in the stored order, the timestamp third as the original wrote it.
      const turn = ConversationTurnSchema.parse({ ...input, timestamp: pythonUtcTimestamp() });
      // The append refreshes the thread's TTL; the header is never rewritten.
      await this.#cache.append(key, turn, { ttlMs: this.ttlMs });
      return withTurns(header.data, [...(stored.items as ConversationTurn[]), turn]);
    });
  }

  /**
   * The thread and its ancestors through `parent_thread_id`, oldest first: at most
   * `MAX_CHAIN_DEPTH` threads, stopping at a missing parent or a cycle. Empty if the thread is absent.
   */
  async getThreadChain(threadId: string): Promise<ThreadContext[]> {
    const chain: ThreadContext[] = [];
    const seen = new Set<string>();
    let currentId: string | null = threadId;
    while (currentId !== null && chain.length < MAX_CHAIN_DEPTH && !seen.has(currentId.toLowerCase())) {
      seen.add(currentId.toLowerCase());
      const thread = await this.getThread(currentId);
      if (!thread) break;
      chain.push(thread);
      currentId = thread.parent_thread_id;
    }
    return chain.reverse();
  }

  /** Removes the thread; a no-op for unknown or invalid ids. Waits for turns being added to it. */
  async deleteThread(threadId: string): Promise<void> {
    if (!isThreadId(threadId)) return;
    await this.#threadLocks.run(threadId.toLowerCase(), () => this.#cache.delete(threadKey(threadId)));
  }
}

/** The thread as the original returned it: its header's turns, then the appended ones; updated when its last turn was added. */
function withTurns(header: ThreadContext, appended: ConversationTurn[]): ThreadContext {
  const last = appended[appended.length - 1];
  return {
    thread_id: header.thread_id,
    parent_thread_id: header.parent_thread_id,
    created_at: header.created_at,
    last_updated_at: last ? last.timestamp : header.last_updated_at,
    tool_name: header.tool_name,
    turns: appended.length === 0 ? header.turns : [...header.turns, ...appended],
    initial_context: header.initial_context,
  };
}

function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : 'input';
    return `${where}: ${issue.message}`;
  });
  throw new ValidationError(problems.join('; '));
}
