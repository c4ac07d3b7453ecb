export {
  ConversationStore,
  type ConversationStoreOptions,
  isThreadId,
  MAX_CHAIN_DEPTH,
  type ThreadCache,
  threadKey,
} from './conversation-store.js';
export { ParentThreadNotFoundError, ThreadNotFoundError, TurnLimitError } from './errors.js';
export { DEFAULT_MAX_TURNS, DEFAULT_TIMEOUT_HOURS, HOUR_MS } from './option-defaults.js';
export {
  type ConversationTurn,
  ConversationTurnSchema,
  type CreateThreadInput,
  CreateThreadInputSchema,
  type NewTurn,
  NewTurnSchema,
  type Role,
  RoleSchema,
  type ThreadContext,
  ThreadContextSchema,
  ThreadIdSchema,
} from './schemas.js';
export { pythonUtcTimestamp } from './timestamp.js';
