import { HybridCacheError } from '../cache/errors.js';

/** The original daemon's user-facing message for a thread that is gone. */
function notFoundMessage(threadId: string): string {
  return (
    `Conversation thread '${threadId}' was not found or has expired; restart the conversation by ` +
    'sending your full request again without continuation_id.'
  );
}

/** The thread does not exist or its TTL ran out. The message is meant for the end user. */
export class ThreadNotFoundError extends HybridCacheError {
  constructor(readonly threadId: string) {
    super('ERR_THREAD_NOT_FOUND', notFoundMessage(threadId));
  }
}

/** `createThread` named a parent thread that does not exist or has expired; nothing was created. */
export class ParentThreadNotFoundError extends HybridCacheError {
  constructor(readonly parentThreadId: string) {
    super('ERR_PARENT_THREAD_NOT_FOUND', notFoundMessage(parentThreadId));
  }
}

/** The thread already holds `maxTurns` turns; nothing was added. */
export class TurnLimitError extends HybridCacheError {
  constructor(
    readonly threadId: string,
    readonly maxTurns: number,
  ) {
    super(
      'ERR_TURN_LIMIT',
      `Conversation thread '${threadId}' has reached its limit of ${maxTurns} turns; start a new ` +
        'conversation without continuation_id.',
    );
  }
}
