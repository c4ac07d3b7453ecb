import { StorageConfigurationError } from '../contract/errors.js';
import { feedPageLimit } from '../contract/feed.js';
import type { FeedChange, FeedPage, FeedReadOptions, StorageCallOptions } from '../contract/types.js';
import { MIGRATION_HINT } from './supabase-errors.js';

/** The largest page the SQL feed functions return; a larger limit is served as this. */
export const MAX_FEED_PAGE_LIMIT = 10_000;

/** One RPC call, as the adapter makes it (errors already mapped). */
export type RpcCall = (
  fn: string,
  args: Record<string, unknown>,
  opts?: StorageCallOptions,
) => Promise<unknown>;

/**
 * Reads one page of a table's change feed through its SQL function (`<table>_changes` in the
 * migration), which does all the work: the cursor is built, checked and read there, so that a
 * direct PostgreSQL connection gets the same answers from the same function.
 */
export async function readFeedPage(
  rpc: RpcCall,
  fn: string,
  after: string | null,
  opts?: FeedReadOptions,
): Promise<FeedPage> {
  const limit = feedPageLimit(opts);
  if (after !== null && typeof after !== 'string') {
    throw new TypeError(`changes: after must be a cursor string or null, got ${typeof after}`);
  }
  const callOpts = opts?.signal ? { signal: opts.signal } : undefined;
  const data = await rpc(fn, { p_after: after, p_limit: Math.min(limit, MAX_FEED_PAGE_LIMIT) }, callOpts);
  const page = feedPage(data);
  if (!page) {
    throw new StorageConfigurationError(
      `Supabase RPC ${fn} answered in an unexpected shape: the database's functions do not match this version of hybrid-cache. ${MIGRATION_HINT}`,
    );
  }
  return page;
}

/** The function's jsonb answer as a `FeedPage`; undefined if malformed. */
function feedPage(data: unknown): FeedPage | undefined {
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
