/**
 * The change feed as the SQL feed functions (`<table>_changes` in the migrations) serve it: the
 * arguments of one call and the page it answers. Shared by `SupabaseStorage` (PostgREST RPC) and
 * `PostgresStorage` (a direct connection), which call the same function: the cursor is built,
 * checked and read there, so both adapters get the same answers.
 */
import { feedPageLimit } from '../contract/feed.js';
import type { FeedChange, FeedPage, FeedReadOptions } from '../contract/types.js';

/** The largest page the SQL feed functions return; a larger limit is served as this. */
export const MAX_FEED_PAGE_LIMIT = 10_000;

/**
 * The feed function's arguments for a read after `after`; throws on a bad cursor or limit.
 * `p_skip_origin` only when asked for, so that a read without it still finds the function of a
 * database migrated before origins (*_feed_origin.sql).
 */
export function feedArgs(
  after: string | null,
  opts: FeedReadOptions | undefined,
): { p_after: string | null; p_limit: number; p_skip_origin?: string } {
  const limit = feedPageLimit(opts);
  if (after !== null && typeof after !== 'string') {
    throw new TypeError(`changes: after must be a cursor string or null, got ${typeof after}`);
  }
  const args = { p_after: after, p_limit: Math.min(limit, MAX_FEED_PAGE_LIMIT) };
  return opts?.skipOrigin ? { ...args, p_skip_origin: opts.skipOrigin } : args;
}

/** The function's jsonb answer as a `FeedPage`; undefined if malformed. */
export function feedPage(data: unknown): FeedPage | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const r = data as Record<string, unknown>;
  if (
    typeof r.epoch !== 'string' ||
    r.epoch === '' ||
    typeof r.cursor !== 'string' ||
    r.cursor === '' ||
    typeof r.reset !== 'boolean' ||
    typeof r.more !== 'boolean' ||
    !Array.isArray(r.changes)
  ) {
    return undefined;
  }
  const changes: FeedChange[] = [];
  for (const raw of r.changes as unknown[]) {
    const change = feedChange(raw);
    if (!change) return undefined;
    changes.push(change);
  }
  return { epoch: r.epoch, cursor: r.cursor, changes, reset: r.reset, more: r.more };
}

function feedChange(raw: unknown): FeedChange | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (typeof r.key !== 'string' || !Number.isSafeInteger(r.version)) return undefined;
  if (r.item_id !== undefined && typeof r.item_id !== 'string') return undefined;
  const change: FeedChange = { key: r.key, version: r.version as number };
  if (typeof r.item_id === 'string') change.itemId = r.item_id;
  return change;
}
