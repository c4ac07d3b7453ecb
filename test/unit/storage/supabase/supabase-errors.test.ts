import { describe, expect, it } from 'vitest';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../../../../src/storage/contract/errors.js';
import { classifyRpcError, parseRetryAfter } from '../../../../src/storage/supabase/supabase-errors.js';

describe('classifyRpcError', () => {
  const classify = (status: number, code = '', retryAfterMs?: number) =>
    classifyRpcError('apply_conversation_threads', status, { code, message: 'boom' }, retryAfterMs);

  it.each([408, 429, 500, 502, 503, 504, 520])('treats HTTP %i as transient', (status) => {
    expect(classify(status)).toBeInstanceOf(TransientStorageError);
  });

  it('keeps the Retry-After delay on transient errors', () => {
    expect((classify(503, 'PGRST000', 2_000) as TransientStorageError).retryAfterMs).toBe(2_000);
    expect((classify(429) as TransientStorageError).retryAfterMs).toBeUndefined();
  });

  it.each([
    [404, 'PGRST202'],
    [404, '42883'],
    [404, '42P01'],
  ])(
    'treats HTTP %i %s (function or table missing) as a configuration error naming the migration',
    (status, code) => {
      const error = classify(status, code);
      expect(error).toBeInstanceOf(StorageConfigurationError);
      expect(error.message).toContain('supabase/migrations/');
      expect(error.message).toContain("NOTIFY pgrst, 'reload schema'");
    },
  );

  it.each([
    [401, 'PGRST301'],
    [401, '42501'],
    [403, '42501'],
  ])('treats HTTP %i %s as a configuration error asking for the service role key', (status, code) => {
    const error = classify(status, code);
    expect(error).toBeInstanceOf(StorageConfigurationError);
    expect(error.message).toMatch(/service_role/);
  });

  it('treats an unexposed schema and ambiguous overloads as configuration errors', () => {
    expect(classify(406, 'PGRST106')).toBeInstanceOf(StorageConfigurationError);
    expect(classify(300, 'PGRST203')).toBeInstanceOf(StorageConfigurationError);
  });

  it.each([
    [400, 'P0001'],
    [400, '22008'],
    [409, '23505'],
    [413, ''],
  ])('treats other 4xx (HTTP %i %s) as permanent', (status, code) => {
    expect(classify(status, code)).toBeInstanceOf(PermanentStorageError);
  });

  it('names the function, status and code in the message', () => {
    expect(classify(409, '23505').message).toBe(
      'Supabase RPC apply_conversation_threads failed (HTTP 409 23505): boom',
    );
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3_000);
    expect(parseRetryAfter('0')).toBe(0);
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
  });

  it('ignores absent or unreadable values', () => {
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('')).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
