import { OutboxError } from '../errors.js';

const codeOf = (error: unknown): string => (error as { code?: string } | undefined)?.code ?? '';
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** SQLite ran out of room: the disk, or the `max_page_count` that enforces `maxFileBytes`. */
export function isFull(error: unknown): boolean {
  return codeOf(error).startsWith('SQLITE_FULL');
}

function isDamaged(code: string): boolean {
  return code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT');
}

const DAMAGED_ADVICE = 'it was left untouched: restore it from a backup or move it aside to start empty';

/** Why the outbox at `path` could not be opened, as an `OutboxError` that says what to do. */
export function describeOpenFailure(path: string, error: unknown): OutboxError {
  if (error instanceof OutboxError) return error;
  const code = codeOf(error);
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new OutboxError(
      `the outbox at ${path} is in use by another process (or another cache in this one); each cache needs its own outbox file`,
      { cause: error },
    );
  }
  if (isDamaged(code)) {
    return new OutboxError(
      `the outbox at ${path} is not a readable SQLite database (${messageOf(error)}); ${DAMAGED_ADVICE}`,
      { cause: error },
    );
  }
  return new OutboxError(`cannot open the outbox at ${path}: ${messageOf(error)}`, { cause: error });
}

/** A failure reading the rows to replay (a damaged page shows up only when it is read). */
export function describeReplayFailure(path: string, error: unknown): OutboxError {
  if (error instanceof OutboxError) return error;
  if (isDamaged(codeOf(error))) {
    return new OutboxError(
      `the outbox at ${path} is damaged and its pending writes cannot be read (${messageOf(error)}); ${DAMAGED_ADVICE}`,
      { cause: error },
    );
  }
  return new OutboxError(`cannot read the pending writes of the outbox at ${path}: ${messageOf(error)}`, {
    cause: error,
  });
}

/** A write the outbox could not record; says what to do when the cause is room or a damaged file. */
export function describeWriteFailure(path: string, error: unknown, capped: boolean): OutboxError {
  if (error instanceof OutboxError) return error;
  return new OutboxError(
    `the outbox at ${path} could not record the write: ${messageOf(error)}${writeAdvice(error, capped)}`,
    { cause: error },
  );
}

function writeAdvice(error: unknown, capped: boolean): string {
  if (isFull(error)) {
    return capped
      ? ' (outbox.maxFileBytes reached: it frees up as the store acknowledges the backlog)'
      : ' (the disk is full: it recovers once space is freed or the store acknowledges the backlog)';
  }
  if (isDamaged(codeOf(error))) {
    return (
      ' (the file is damaged: writes accepted before keep flushing from memory; stop the process, ' +
      'then restore the file from a backup or move it aside to start empty)'
    );
  }
  return '';
}
