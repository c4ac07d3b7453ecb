import { ValidationError, ValueTooLargeError } from './errors.js';

export const MAX_KEY_BYTES = 512;

export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new ValidationError(`key must be a string, got ${describe(key)}`);
  if (key.length === 0) throw new ValidationError('key must not be empty');
  if (key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new ValidationError(
      `key is ${Buffer.byteLength(key)} bytes; the limit is ${MAX_KEY_BYTES} bytes (UTF-8)`,
    );
  }
  // One scan for the rare characters that need a closer look; ordinary keys pay only this.
  if (NUL_OR_SURROGATE.test(key)) validateUnusualKey(key);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is one of the characters this looks for.
const NUL_OR_SURROGATE = /[\u0000\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function validateUnusualKey(key: string): void {
  // Stores keep keys as text and PostgreSQL text cannot hold NUL, so such a key could never be flushed.
  if (key.includes('\u0000')) throw new ValidationError('key must not contain the NUL character');
  // A lone surrogate has no UTF-8 encoding: a store would keep a different key than the one written.
  if (LONE_SURROGATE.test(key))
    throw new ValidationError('key must be well-formed Unicode (no lone surrogates)');
}

export function validateTtl(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs < 0) {
    throw new ValidationError(`ttlMs must be a finite number >= 0, got ${describe(ttlMs)}`);
  }
  return ttlMs;
}

/** Absolute expiry for a TTL (`0`: none), as whole epoch milliseconds every store can hold. */
export function expiryFor(ttlMs: number, now: number): number | null {
  if (ttlMs === 0) return null;
  const expiresAt = Math.ceil(now + ttlMs);
  if (!Number.isSafeInteger(expiresAt))
    throw new ValidationError(`ttlMs ${ttlMs} puts the expiry out of range`);
  return expiresAt;
}

/**
 * Serializes a value once; the result is what memory, outbox and store all hold. The limit is in
 * UTF-8 bytes (what a store stores); memory accounting uses `json.length` wherever an entry comes
 * from, so a value costs the same whether it was set, loaded or replayed.
 */
export function serializeValue(value: unknown, maxValueBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new ValidationError(`value is not JSON-serialisable: ${(error as Error).message}`);
  }
  if (json === undefined) throw new ValidationError(`value is not JSON-serialisable: ${describe(value)}`);
  // A UTF-8 string is at most 3 bytes per UTF-16 unit, so short strings skip the exact count.
  if (json.length * 3 > maxValueBytes) {
    const bytes = Buffer.byteLength(json);
    if (bytes > maxValueBytes) {
      throw new ValueTooLargeError(bytes, maxValueBytes);
    }
  }
  return json;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number') return String(value);
  return typeof value;
}
