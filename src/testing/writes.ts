import type { VersionedWrite } from '../storage/types.js';

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
