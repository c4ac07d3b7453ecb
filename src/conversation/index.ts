/**
 * `hybrid-cache/conversation`: conversation threads (the original daemon's `ThreadContext`) over a
 * cache. Input is validated by the store itself (`ValidationError` naming each field), so the
 * schemas it validates with are not part of the API.
 */

// First, so an unsupported Node.js is refused before anything else of the package loads.
import '../require-supported-node.js';

export {
  ConversationStore,
  type ConversationStoreOptions,
  isThreadId,
  MAX_CHAIN_DEPTH,
  type ThreadCache,
  threadKey,
} from './conversation-store.js';
export { ParentThreadNotFoundError, ThreadNotFoundError, TurnLimitError } from './errors.js';
export type { ConversationTurn, CreateThreadInput, NewTurn, Role, ThreadContext } from './schemas.js';
