export { createHybridCache } from './cache/create.js';
export {
  BackpressureError,
  ClosedError,
  CorruptValueError,
  FlushTimeoutError,
  HybridCacheError,
  OutboxError,
  StorageUnavailableError,
  ValidationError,
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
} from './cache/types.js';
export {
  type Config,
  ConfigError,
  type ConfigWarning,
  type Env,
  type LoadedConfig,
  loadConfig,
  type Wired,
  wire,
} from './config/index.js';
export * from './conversation/index.js';
export { PermanentStorageError, StorageConfigurationError, TransientStorageError } from './storage/errors.js';
export { MemoryStorage } from './storage/memory-storage.js';
export { SqliteStorage, type SqliteStorageOptions } from './storage/sqlite-storage.js';
export {
  SupabaseStorage,
  type SupabaseStorageCommonOptions,
  type SupabaseStorageOptions,
} from './storage/supabase-storage.js';
export type {
  ApplyResult,
  Storage,
  StorageCallOptions,
  StoredEntry,
  VersionedWrite,
} from './storage/types.js';
export { LOGICAL_SLOTS, versionTimeMs } from './storage/version.js';
