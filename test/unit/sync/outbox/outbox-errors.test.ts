import { describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import {
  describeOpenFailure,
  describeReplayFailure,
  describeWriteFailure,
  isFull,
} from '../../../../src/sync/outbox/outbox-errors.js';

const PATH = '/data/outbox.db';
const sqliteError = (code: string, message: string) => Object.assign(new Error(message), { code });
const ADVICE = 'it was left untouched: restore it from a backup or move it aside to start empty';

describe('isFull', () => {
  it('is true for SQLite running out of room, false for other errors and for values that are not errors', () => {
    expect(isFull(sqliteError('SQLITE_FULL', 'database or disk is full'))).toBe(true);
    expect(isFull(sqliteError('SQLITE_IOERR_WRITE', 'disk I/O error'))).toBe(false);
    expect(isFull(new Error('no code'))).toBe(false);
    expect(isFull(undefined)).toBe(false);
    expect(isFull(null)).toBe(false);
  });
});

describe('describeOpenFailure', () => {
  it('passes an OutboxError through as it is', () => {
    const error = new OutboxError('already explained');
    expect(describeOpenFailure(PATH, error)).toBe(error);
  });

  it.each(['SQLITE_BUSY', 'SQLITE_LOCKED'])('%s: the file is in use, each cache needs its own', (code) => {
    const cause = sqliteError(code, 'database is locked');
    const error = describeOpenFailure(PATH, cause);
    expect(error).toBeInstanceOf(OutboxError);
    expect(error.message).toBe(
      `the outbox at ${PATH} is in use by another process (or another cache in this one); each cache needs its own outbox file`,
    );
    expect(error.cause).toBe(cause);
  });

  it.each([
    ['SQLITE_NOTADB', 'file is not a database'],
    ['SQLITE_CORRUPT', 'database disk image is malformed'],
    ['SQLITE_CORRUPT_INDEX', 'database disk image is malformed'],
  ])('%s: not a readable database, left untouched, with what to do', (code, message) => {
    const cause = sqliteError(code, message);
    const error = describeOpenFailure(PATH, cause);
    expect(error.message).toBe(
      `the outbox at ${PATH} is not a readable SQLite database (${message}); ${ADVICE}`,
    );
    expect(error.cause).toBe(cause);
  });

  it('any other failure: cannot open, with the cause’s message', () => {
    const cause = sqliteError('SQLITE_CANTOPEN', 'unable to open database file');
    const error = describeOpenFailure(PATH, cause);
    expect(error.message).toBe(`cannot open the outbox at ${PATH}: unable to open database file`);
    expect(error.cause).toBe(cause);
    expect(describeOpenFailure(PATH, 'a thrown string').message).toBe(
      `cannot open the outbox at ${PATH}: a thrown string`,
    );
    expect(describeOpenFailure(PATH, undefined).message).toBe(`cannot open the outbox at ${PATH}: undefined`);
  });
});

describe('describeReplayFailure', () => {
  it('passes an OutboxError through as it is', () => {
    const error = new OutboxError('already explained');
    expect(describeReplayFailure(PATH, error)).toBe(error);
  });

  it.each([
    ['SQLITE_CORRUPT', 'database disk image is malformed'],
    ['SQLITE_CORRUPT_SEQUENCE', 'database disk image is malformed'],
    ['SQLITE_NOTADB', 'file is not a database'],
  ])('%s: the pending writes cannot be read, with what to do', (code, message) => {
    const cause = sqliteError(code, message);
    const error = describeReplayFailure(PATH, cause);
    expect(error).toBeInstanceOf(OutboxError);
    expect(error.message).toBe(
      `the outbox at ${PATH} is damaged and its pending writes cannot be read (${message}); ${ADVICE}`,
    );
    expect(error.cause).toBe(cause);
  });

  it('any other failure: cannot read the pending writes, with the cause’s message', () => {
    const cause = sqliteError('SQLITE_IOERR_READ', 'disk I/O error');
    const error = describeReplayFailure(PATH, cause);
    expect(error).toBeInstanceOf(OutboxError);
    expect(error.message).toBe(`cannot read the pending writes of the outbox at ${PATH}: disk I/O error`);
    expect(error.cause).toBe(cause);
    expect(describeReplayFailure(PATH, null).message).toBe(
      `cannot read the pending writes of the outbox at ${PATH}: null`,
    );
  });
});

describe('describeWriteFailure', () => {
  it('passes an OutboxError through as it is', () => {
    const error = new OutboxError('the disk is nearly full');
    expect(describeWriteFailure(PATH, error, true)).toBe(error);
    expect(describeWriteFailure(PATH, error, false)).toBe(error);
  });

  it('a full outbox under a cap says the cap was reached and frees up as the backlog is acknowledged', () => {
    const cause = sqliteError('SQLITE_FULL', 'database or disk is full');
    const error = describeWriteFailure(PATH, cause, true);
    expect(error.message).toBe(
      `the outbox at ${PATH} could not record the write: database or disk is full` +
        ' (outbox.maxFileBytes reached: it frees up as the store acknowledges the backlog)',
    );
    expect(error.cause).toBe(cause);
  });

  it('a full outbox without a cap says the disk is full and how it recovers', () => {
    const error = describeWriteFailure(PATH, sqliteError('SQLITE_FULL', 'database or disk is full'), false);
    expect(error.message).toBe(
      `the outbox at ${PATH} could not record the write: database or disk is full` +
        ' (the disk is full: it recovers once space is freed or the store acknowledges the backlog)',
    );
  });

  it('a damaged file says so and what to do, whatever the cap', () => {
    const cause = sqliteError('SQLITE_CORRUPT', 'database disk image is malformed');
    for (const capped of [true, false]) {
      expect(describeWriteFailure(PATH, cause, capped).message).toBe(
        `the outbox at ${PATH} could not record the write: database disk image is malformed` +
          ' (the file is damaged: writes accepted before keep flushing from memory; stop the process, ' +
          'then restore the file from a backup or move it aside to start empty)',
      );
    }
    expect(
      describeWriteFailure(PATH, sqliteError('SQLITE_NOTADB', 'file is not a database'), false).message,
    ).toMatch(/\(the file is damaged: /);
  });

  it('any other failure: the cause’s message and nothing about room', () => {
    const cause = sqliteError('SQLITE_IOERR_WRITE', 'disk I/O error');
    expect(describeWriteFailure(PATH, cause, true).message).toBe(
      `the outbox at ${PATH} could not record the write: disk I/O error`,
    );
    expect(describeWriteFailure(PATH, undefined, false).message).toBe(
      `the outbox at ${PATH} could not record the write: undefined`,
    );
  });
});
