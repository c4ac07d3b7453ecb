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
  type Config,
  ConfigError,
  type ConfigWarning,
  type Env,
  type LoadedConfig,
  loadConfig,
  resolveMaxTurns,
} from './config/index.js';
export * from './conversation/index.js';
// The daemon's assembly without its HTTP server: the root must load without fastify and prom-client.
export { type Wired, wire } from './daemon/wire.js';
export {
  PermanentStorageError,
  StorageConfigurationError,
  type StorageErrorKind,
  TransientStorageError,
} from './storage/errors.js';
export { MemoryStorage } from './storage/memory-storage.js';
export { SqliteStorage, type SqliteStorageOptions } from './storage/sqlite-storage.js';
export {
  SupabaseStorage,
  type SupabaseStorageCommonOptions,
  type SupabaseStorageOptions,
  type SupabaseTable,
} from './storage/supabase-storage.js';
export { DEFAULT_TOMBSTONE_RETENTION_MS } from './storage/tombstone-retention.js';
export {
  type AppendWrite,
  type ApplyResult,
  compareItems,
  isAppend,
  type LogItem,
  type Storage,
  type StorageCallOptions,
  type StorageCleanupOptions,
  type StoredEntry,
  type ValueWrite,
  type VersionedWrite,
} from './storage/types.js';
export { LOGICAL_SLOTS, versionTimeMs } from './storage/version.js';
