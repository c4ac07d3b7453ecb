/**
 * `hybrid-cache`: the engine, the stores that need no service (`MemoryStorage`, `SqliteStorage`),
 * the errors and the types, for the cache and for anyone writing a `Storage`. It loads no Supabase
 * or PostgreSQL client: `SupabaseStorage` is `hybrid-cache/supabase`, the conversation store
 * `hybrid-cache/conversation`, the adapter contract suite `hybrid-cache/testing`.
 */

// First, so an unsupported Node.js is refused before any module below can load the SQLite native module.
import './require-supported-node.js';

export { createHybridCache } from './cache/create.js';
export {
  BackpressureError,
  ClockError,
  ClosedError,
  CorruptValueError,
  FlushTimeoutError,
  HybridCacheError,
  OutboxError,
  StorageUnavailableError,
  ValidationError,
  ValueTooLargeError,
} from './cache/errors.js';
export type { HybridCache } from './cache/hybrid-cache.js';
export type {
  CacheEvents,
  CacheStats,
  CloseOptions,
  CloseResult,
  DeadLetter,
  Durability,
  FlushOptions,
  Health,
  HybridCacheOptions,
  OutboxOptions,
  SetOptions,
  SetValueOptions,
  SupersededWrite,
  ValueAndItems,
} from './cache/types.js';
export {
  PermanentStorageError,
  StorageConfigurationError,
  type StorageErrorKind,
  TransientStorageError,
} from './storage/contract/errors.js';
export { DEFAULT_TOMBSTONE_RETENTION_MS } from './storage/contract/tombstone-retention.js';
export {
  type AppendWrite,
  type ApplyOptions,
  type ApplyResult,
  compareItems,
  DEFAULT_FEED_PAGE_LIMIT,
  type DoorbellRing,
  type DoorbellState,
  type FeedChange,
  type FeedPage,
  type FeedReadOptions,
  isAppend,
  type LogItem,
  type Storage,
  type StorageCallOptions,
  type StorageCleanupOptions,
  type StoredEntry,
  type ValueWrite,
  type VersionedWrite,
} from './storage/contract/types.js';
export { LOGICAL_SLOTS, versionTimeMs } from './storage/contract/version.js';
export { MemoryStorage } from './storage/memory/memory-storage.js';
export { SqliteStorage, type SqliteStorageOptions } from './storage/sqlite/sqlite-storage.js';
