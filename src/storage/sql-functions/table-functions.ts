/**
 * The per-table SQL functions that supabase/migrations installs, and the pure translation between
 * the `Storage` contract and their arguments and rows. Shared by `SupabaseStorage` (which calls
 * them through PostgREST RPC) and `PostgresStorage` (which calls them over a direct connection),
 * so one database serves both adapters and both read and write it the same way.
 */
import { PermanentStorageError } from '../contract/errors.js';
import { logFloorProblem } from '../contract/log-floor.js';
import {
  type AppendWrite,
  type ApplyResult,
  compareItems,
  isAppend,
  type LogItem,
  type StoredEntry,
  type ValueWrite,
  type VersionedWrite,
} from '../contract/types.js';
import { fromJsonbText, toJsonbText } from './jsonb-text.js';

/** How each table's migration names its functions and the key in their JSON. */
export const SQL_TABLES = {
  hybrid_cache_entries: {
    keyField: 'key',
    keysParam: 'p_keys',
    functions: {
      write: 'hybrid_cache_write',
      writeFrom: 'hybrid_cache_write_from',
      apply: 'hybrid_cache_apply',
      append: 'hybrid_cache_append',
      get: 'hybrid_cache_get',
      getWithItems: 'hybrid_cache_get_with_items',
      cleanup: 'hybrid_cache_cleanup',
      highWaterMark: 'hybrid_cache_high_water_mark',
      changes: 'hybrid_cache_changes',
    },
  },
  conversation_threads: {
    keyField: 'thread_id',
    keysParam: 'p_thread_ids',
    functions: {
      write: 'write_conversation_threads',
      writeFrom: 'write_conversation_threads_from',
      apply: 'apply_conversation_threads',
      append: 'append_conversation_turns',
      get: 'get_conversation_threads',
      getWithItems: 'get_conversation_threads_with_turns',
      cleanup: 'cleanup_expired_threads',
      highWaterMark: 'conversation_threads_high_water_mark',
      changes: 'conversation_threads_changes',
    },
  },
} as const;

export type SqlTable = keyof typeof SQL_TABLES;

export type SqlTableSchema = (typeof SQL_TABLES)[SqlTable];

/** The table's schema, or undefined when `table` names none of the tables the migrations create. */
export function sqlTable(table: unknown): SqlTableSchema | undefined {
  return typeof table === 'string' && Object.hasOwn(SQL_TABLES, table)
    ? SQL_TABLES[table as SqlTable]
    : undefined;
}

/** One call of the table's write function: the part of a batch it carries. */
export interface WriteCall {
  /** Batch positions of the rows the function returns (values first, then appends). */
  positions: number[];
  /** The function's arguments (its p_writes and p_appends, JSON arrays). */
  args: { p_writes: Record<string, unknown>[]; p_appends: Record<string, unknown>[] };
}

/** A batch as calls of the table's write function, made one after another, and their answers. */
export interface WriteCalls {
  /** Writes that can never be stored are answered here, before any call; the rest are holes. */
  results: ApplyResult[];
  calls: WriteCall[];
}

/**
 * The write function to call for a batch: the one that records the writing cache's origin with
 * the changes (*_feed_origin.sql) when one is given, else the plain one, which a database
 * migrated before origins also has.
 */
export function writeFunction(table: SqlTableSchema, origin: string | undefined): string {
  return origin ? table.functions.writeFrom : table.functions.write;
}

/**
 * Splits a batch into the write function's arguments, rejecting the writes that can never be
 * stored. The function applies a call's values before its appends, so a batch is cut before a
 * value whose key was appended to earlier in the same call: that value's expiry judgement must see
 * the refresh those appends carry. Answers are per write, so no call needs another's transaction.
 */
export function writeCalls(writes: VersionedWrite[], keyField: string): WriteCalls {
  const results: ApplyResult[] = new Array(writes.length);
  const calls: WriteCall[] = [];
  let values: number[] = [];
  let appends: number[] = [];
  let call: WriteCall['args'] = { p_writes: [], p_appends: [] };
  let appended = new Set<string>();
  const cut = () => {
    if (values.length + appends.length > 0) calls.push({ positions: [...values, ...appends], args: call });
    values = [];
    appends = [];
    call = { p_writes: [], p_appends: [] };
    appended = new Set();
  };
  writes.forEach((write, i) => {
    const problem = invalidWrite(write);
    if (problem) {
      results[i] = { status: 'rejected', error: new PermanentStorageError(`${problem} (key ${write.key})`) };
      return;
    }
    if (isAppend(write)) {
      appended.add(write.key);
      appends.push(i);
      call.p_appends.push(appendPayload(keyField, write));
      return;
    }
    if (appended.has(write.key)) cut();
    values.push(i);
    call.p_writes.push(valuePayload(keyField, write));
  });
  cut();
  return { results, calls };
}

/**
 * Fills `results` from the rows one write-function call returned; false if the rows are
 * malformed (the database's functions do not match this version of hybrid-cache).
 */
export function readWriteRows(
  results: ApplyResult[],
  call: WriteCall,
  writes: VersionedWrite[],
  rows: unknown,
): boolean {
  const { positions } = call;
  if (!Array.isArray(rows) || rows.length !== positions.length) return false;
  for (const row of rows as unknown[]) {
    const position = isApplyRow(row) ? positions[row.idx] : undefined;
    const write = position === undefined ? undefined : writes[position];
    if (position === undefined || !write || !isApplyRow(row)) return false;
    results[position] =
      row.outcome === 'applied'
        ? { status: 'applied' }
        : row.stored_version !== null && row.stored_version >= write.version
          ? { status: 'stale', storedVersion: row.stored_version }
          : { status: 'stale' };
  }
  return true;
}

/** The entries in the rows of the table's get-with-items function; undefined if malformed. */
export function readEntries(rows: unknown, keyField: string): Map<string, StoredEntry> | undefined {
  if (!Array.isArray(rows)) return undefined;
  const found = new Map<string, StoredEntry>();
  for (const raw of rows as unknown[]) {
    const row = getRow(raw, keyField);
    const items = row && logItems((raw as { items?: unknown }).items);
    if (!row || items === undefined) return undefined;
    const entry: StoredEntry = {
      version: row.version,
      json: row.data === null ? null : fromJsonbText(row.data),
      expiresAt: row.expires_at_ms,
    };
    // The one order every reader sees, whatever the database's collation.
    if (items.length > 0) entry.items = items.sort(compareItems);
    found.set(row.key, entry);
  }
  return found;
}

/** A high-water mark as the function answered it; undefined if it is not a version. */
export function readHighWaterMark(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined;
}

interface GetRow {
  key: string;
  version: number;
  data: string | null;
  expires_at_ms: number | null;
}

interface ApplyRow {
  idx: number;
  outcome: 'applied' | 'stale';
  stored_version: number | null;
}

/** A row of the get function, its key read from the table's key column; undefined if malformed. */
function getRow(row: unknown, keyField: string): GetRow | undefined {
  if (typeof row !== 'object' || row === null) return undefined;
  const r = row as Record<string, unknown>;
  const key = r[keyField];
  const valid =
    typeof key === 'string' &&
    Number.isSafeInteger(r.version) &&
    (r.data === null || typeof r.data === 'string') &&
    (r.expires_at_ms === null || Number.isSafeInteger(r.expires_at_ms));
  if (!valid) return undefined;
  return {
    key,
    version: r.version as number,
    data: r.data as string | null,
    expires_at_ms: r.expires_at_ms as number | null,
  };
}

function valuePayload(keyField: string, write: ValueWrite): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    [keyField]: write.key,
    version: write.version,
    data: write.json === null ? null : toJsonbText(write.json),
    expires_at_ms: write.expiresAt,
  };
  if (write.logFloor) payload.log_floor = write.logFloor;
  // Read by the functions of *_log_floor_at_write_time.sql; earlier ones ignore it.
  if (write.writtenAt !== undefined) payload.written_at_ms = write.writtenAt;
  if (write.firstVersion !== undefined) payload.first_version = write.firstVersion;
  return payload;
}

function appendPayload(keyField: string, write: AppendWrite): Record<string, unknown> {
  return {
    [keyField]: write.key,
    version: write.version,
    expires_at_ms: write.expiresAt,
    appended_at_ms: write.appendedAt,
    items: write.items.map((item) => ({ id: item.id, version: item.version, data: toJsonbText(item.json) })),
  };
}

/** The items column of a read (null: none); undefined if malformed. */
function logItems(raw: unknown): LogItem[] | undefined {
  if (raw === null || raw === undefined) return [];
  if (!Array.isArray(raw)) return undefined;
  const items: LogItem[] = [];
  for (const entry of raw as unknown[]) {
    const r = entry as Record<string, unknown> | null;
    if (!r || typeof r.id !== 'string' || !Number.isSafeInteger(r.version) || typeof r.data !== 'string') {
      return undefined;
    }
    items.push({ id: r.id, version: r.version as number, json: fromJsonbText(r.data) });
  }
  return items;
}

function isApplyRow(row: unknown): row is ApplyRow {
  if (typeof row !== 'object' || row === null) return false;
  const r = row as Record<string, unknown>;
  return (
    Number.isInteger(r.idx) &&
    (r.outcome === 'applied' || r.outcome === 'stale') &&
    (r.stored_version === null || Number.isSafeInteger(r.stored_version))
  );
}

/** Why a write can never be stored, or undefined if it is fine. */
function invalidWrite(write: VersionedWrite): string | undefined {
  if (typeof write.key !== 'string' || write.key.length === 0) return 'invalid key';
  if (!Number.isSafeInteger(write.version) || write.version < 0) return 'invalid version';
  if (write.expiresAt !== null && !Number.isFinite(write.expiresAt)) return 'invalid expiresAt';
  if (write.json !== null && typeof write.json !== 'string') return 'invalid json';
  if (!isAppend(write)) return logFloorProblem(write);
  if (!Array.isArray(write.items) || write.items.length === 0) return 'invalid items';
  if (!Number.isFinite(write.appendedAt)) return 'invalid appendedAt';
  for (const item of write.items) {
    if (typeof item.id !== 'string' || item.id.length === 0) return 'invalid item id';
    if (!Number.isSafeInteger(item.version) || item.version < 0) return 'invalid item version';
    if (typeof item.json !== 'string') return 'invalid item json';
  }
  return undefined;
}
