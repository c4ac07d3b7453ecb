import { describe, expect, it } from 'vitest';
import {
  declaredKind,
  isStorageError,
  PermanentStorageError,
  StorageConfigurationError,
  TransientStorageError,
} from '../../../../src/storage/contract/errors.js';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  retentionInterval,
} from '../../../../src/storage/contract/tombstone-retention.js';

describe('the kind an error declares', () => {
  it('is one of the three kinds, from the error classes or any object that says so', () => {
    expect(declaredKind(new TransientStorageError('x'))).toBe('transient');
    expect(declaredKind(new PermanentStorageError('x'))).toBe('permanent');
    expect(declaredKind(new StorageConfigurationError('x'))).toBe('configuration');
    expect(declaredKind({ kind: 'transient' })).toBe('transient');
    expect(declaredKind({ kind: 'permanent' })).toBe('permanent');
    expect(declaredKind({ kind: 'configuration' })).toBe('configuration');
  });

  it('is nothing for other kinds, for primitives, null, and functions', () => {
    expect(declaredKind({ kind: 'fatal' })).toBeUndefined();
    expect(declaredKind({})).toBeUndefined();
    expect(declaredKind(null)).toBeUndefined();
    expect(declaredKind(undefined)).toBeUndefined();
    expect(declaredKind('transient')).toBeUndefined();
    const fn = Object.assign(() => {}, { kind: 'transient' });
    expect(declaredKind(fn)).toBeUndefined();
  });

  it('makes a storage error only of an Error', () => {
    expect(isStorageError(Object.assign(new Error('x'), { kind: 'permanent' }))).toBe(true);
    expect(isStorageError({ kind: 'permanent' })).toBe(false);
    expect(isStorageError(new Error('x'))).toBe(false);
  });
});

describe('tombstone retention', () => {
  it('keeps tombstones seven days unless told otherwise', () => {
    expect(DEFAULT_TOMBSTONE_RETENTION_MS).toBe(7 * 24 * 60 * 60 * 1000);
  });

  it('is sent to PostgreSQL as whole milliseconds, and refused when not a duration', () => {
    expect(retentionInterval(1_500.9)).toBe('1500 milliseconds');
    expect(retentionInterval(0)).toBe('0 milliseconds');
    expect(() => retentionInterval(-1)).toThrow(RangeError);
    expect(() => retentionInterval(Number.POSITIVE_INFINITY)).toThrow(/tombstoneRetentionMs/);
  });
});
