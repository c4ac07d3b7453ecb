import { randomUUID } from 'node:crypto';
import type { AppendWrite, LogItem, ValueWrite, VersionedWrite } from '../storage/contract/types.js';

/** A versioned write of `value` (serialized), as the cache would send it. */
export const put = (
  key: string,
  version: number,
  value: unknown,
  expiresAt: number | null = null,
): VersionedWrite => ({
  key,
  version,
  json: JSON.stringify(value),
  expiresAt,
});

/** A versioned delete. */
export const tombstone = (key: string, version: number): VersionedWrite => ({
  key,
  version,
  json: null,
  expiresAt: null,
});

/** An item of a key's log as the cache would mint it; `id` (unique across keys too) defaults to a fresh one. */
export const item = (
  version: number,
  value: unknown,
  id = `${version.toString(36)}.${randomUUID()}`,
): LogItem => ({
  id,
  version,
  json: JSON.stringify(value),
});

/** Items appended to `key`'s log; the write's version is the newest item's. */
export const appended = (
  key: string,
  items: LogItem[],
  expiresAt: number | null = null,
  appendedAt = Date.now(),
): AppendWrite => ({
  key,
  version: Math.max(...items.map((i) => i.version)),
  json: null,
  expiresAt,
  appendedAt,
  items,
});

/**
 * A versioned write of `value` that starts a new log, as the cache sends a value written over a
 * delete it never sent: the key's items at or below `logFloor` end with it.
 */
export const putWithLogFloor = (
  key: string,
  version: number,
  value: unknown,
  logFloor: number,
  expiresAt: number | null = null,
): ValueWrite => ({ key, version, json: JSON.stringify(value), expiresAt, logFloor });
