import { BrokenCircuitError, TaskCancelledError } from 'cockatiel';
import { describe, expect, it } from 'vitest';
import {
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../../../../src/index.js';
import { classifyFailure, requestedDelayMs } from '../../../../src/sync/flush/failure-kind.js';

const withCode = (code: string) => Object.assign(new Error(code), { code });
const withStatus = (status: number, key: 'status' | 'statusCode' = 'status') =>
  Object.assign(new Error(`HTTP ${status}`), { [key]: status });
const named = (name: string) => Object.assign(new Error(name), { name });

describe('classifyFailure', () => {
  it.each([
    ['TransientStorageError', new TransientStorageError('x'), 'transient'],
    ['PermanentStorageError', new PermanentStorageError('x'), 'permanent'],
    ['StorageConfigurationError', new StorageConfigurationError('x'), 'configuration'],
    ['an open breaker', new BrokenCircuitError(), 'transient'],
    ['a timed-out call', new TaskCancelledError(), 'transient'],
    ['AbortError', named('AbortError'), 'transient'],
    ['TimeoutError', named('TimeoutError'), 'transient'],
    ['a thrown string', 'boom', 'transient'],
    ['ECONNRESET', withCode('ECONNRESET'), 'transient'],
    ['ECONNREFUSED', withCode('ECONNREFUSED'), 'transient'],
    ['ETIMEDOUT', withCode('ETIMEDOUT'), 'transient'],
    ['UND_ERR_SOCKET', withCode('UND_ERR_SOCKET'), 'transient'],
    ['SQLITE_BUSY', withCode('SQLITE_BUSY'), 'transient'],
    ['SQLITE_FULL', withCode('SQLITE_FULL'), 'transient'],
    ['SQLITE_IOERR_WRITE', withCode('SQLITE_IOERR_WRITE'), 'transient'],
    ['SQLITE_CONSTRAINT_CHECK', withCode('SQLITE_CONSTRAINT_CHECK'), 'permanent'],
    ['SQLITE_TOOBIG', withCode('SQLITE_TOOBIG'), 'permanent'],
    ['SQLITE_READONLY', withCode('SQLITE_READONLY'), 'configuration'],
    ['an unknown SQLite code', withCode('SQLITE_WHATEVER'), 'transient'],
    ['HTTP 408', withStatus(408), 'transient'],
    ['HTTP 429', withStatus(429), 'transient'],
    ['HTTP 500', withStatus(500), 'transient'],
    ['HTTP 503 (statusCode)', withStatus(503, 'statusCode'), 'transient'],
    ['HTTP 401', withStatus(401), 'configuration'],
    ['HTTP 403', withStatus(403), 'configuration'],
    ['HTTP 400', withStatus(400), 'permanent'],
    ['HTTP 404', withStatus(404), 'permanent'],
    ['HTTP 409', withStatus(409), 'permanent'],
    ['status 0 (network failure)', withStatus(0), 'transient'],
    ['HTTP 302 (not an error class)', withStatus(302), 'transient'],
    ['an unknown code', withCode('EWHATEVER'), 'transient'],
    ['an unknown error', new TypeError('bug'), 'transient'],
  ])('%s is %s', (_label, error, kind) => {
    expect(classifyFailure(error)).toBe(kind);
  });

  it.each([
    [
      'TransientStorageError with HTTP 400',
      Object.assign(new TransientStorageError('x'), { status: 400 }),
      'transient',
    ],
    [
      'TransientStorageError with a constraint code',
      Object.assign(new TransientStorageError('x'), { code: 'SQLITE_CONSTRAINT_UNIQUE' }),
      'transient',
    ],
    [
      'PermanentStorageError with HTTP 503',
      Object.assign(new PermanentStorageError('x'), { status: 503 }),
      'permanent',
    ],
    [
      'StorageConfigurationError with HTTP 500',
      Object.assign(new StorageConfigurationError('x'), { statusCode: 500 }),
      'configuration',
    ],
  ])('an explicit class wins over what it carries: %s is %s', (_label, error, kind) => {
    expect(classifyFailure(error)).toBe(kind);
  });

  // An adapter built against another copy of the package throws classes this copy has never seen.
  it.each([
    ['transient', 'transient'],
    ['permanent', 'permanent'],
    ['configuration', 'configuration'],
  ] as const)('reads kind %s from an error of a foreign class', (kind, expected) => {
    const foreign = Object.assign(new Error('from another copy'), { kind, status: 503 });
    expect(classifyFailure(foreign)).toBe(expected);
  });

  it('ignores a kind it does not know and falls back to code and status', () => {
    expect(classifyFailure(Object.assign(new Error('x'), { kind: 'fatal', status: 404 }))).toBe('permanent');
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a plain object with a 4xx status', { status: 404 }],
    ['an Error with a numeric-looking string status', Object.assign(new Error('x'), { status: '404' })],
  ])('treats %s as transient (nothing trustworthy to go on)', (_label, thrown) => {
    expect(classifyFailure(thrown)).toBe('transient');
  });
});

describe('requestedDelayMs', () => {
  it('is the Retry-After a transient error carries, else 0', () => {
    expect(requestedDelayMs(new TransientStorageError('x', { retryAfterMs: 2_500 }))).toBe(2_500);
    expect(requestedDelayMs(new TransientStorageError('x'))).toBe(0);
    expect(requestedDelayMs(Object.assign(new Error('x'), { retryAfterMs: 9 }))).toBe(0);
    expect(requestedDelayMs(Object.assign(new Error('x'), { kind: 'transient', retryAfterMs: 9 }))).toBe(9);
    expect(requestedDelayMs(Object.assign(new Error('x'), { kind: 'permanent', retryAfterMs: 9 }))).toBe(0);
  });

  it.each([
    ['zero', 0],
    ['negative', -5],
    ['infinite', Number.POSITIVE_INFINITY],
    ['NaN', Number.NaN],
    ['a string', '9'],
  ])('ignores a %s retryAfterMs', (_label, retryAfterMs) => {
    expect(requestedDelayMs(Object.assign(new Error('x'), { kind: 'transient', retryAfterMs }))).toBe(0);
  });
});
