import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { createHybridCache } from '../cache/create.js';
import type { HybridCache } from '../cache/hybrid-cache.js';
import type { CloseResult } from '../cache/types.js';
import type { Config } from '../config/load-config.js';
import { ConversationStore } from '../conversation/conversation-store.js';
import type { Storage } from '../storage/contract/types.js';
import { createStorage } from './storage-for-config.js';
import { scheduleStoreCleanup } from './store-cleanup.js';

export interface Wired {
  cache: HybridCache;
  storage: Storage;
  conversations: ConversationStore;
  /** Closes the cache (draining until the deadline; the rest stays in the outbox), then the store. */
  close(options?: { timeoutMs?: number }): Promise<CloseResult>;
}

/** Builds the store, the cache over it (replaying the outbox) and the conversation store. */
export async function wire(config: Config, logger: Logger): Promise<Wired> {
  const { cache: options } = config;
  const usesDataDir = config.storage.backend === 'sqlite' || options.durability !== 'none';
  if (usesDataDir) mkdirSync(config.storage.dataDir, { recursive: true });

  const storage = createStorage(config, logger);
  let cache: HybridCache;
  try {
    cache = await createHybridCache({
      storage,
      outbox: {
        durability: options.durability,
        path: options.outboxPath,
        ...(options.outboxMaxBytes === undefined ? {} : { maxFileBytes: options.outboxMaxBytes }),
      },
      maxEntries: options.maxEntries,
      maxBytes: options.maxBytes,
      maxValueBytes: options.maxValueBytes,
      maxPendingBytes: options.maxPendingBytes,
      flush: options.flush,
      retry: options.retry,
      breaker: options.breaker,
      readTimeoutMs: options.readTimeoutMs,
      writeTimeoutMs: options.writeTimeoutMs,
      feed: options.feedPollIntervalMs === 0 ? false : { pollIntervalMs: options.feedPollIntervalMs },
      maxStalenessMs: options.maxStalenessMs,
      logger: logger.child({ component: 'cache' }),
    });
  } catch (error) {
    await storage.close?.();
    throw error;
  }
  const conversations = new ConversationStore({
    cache,
    ttlMs: config.conversation.ttlMs,
    maxTurns: config.conversation.maxTurns,
  });

  const stopCleanup = scheduleStoreCleanup(
    storage,
    config.storage.cleanupIntervalMs,
    logger.child({ component: 'store-cleanup' }),
  );

  return {
    cache,
    storage,
    conversations,
    async close(closeOptions = {}) {
      stopCleanup();
      try {
        return await cache.close(closeOptions);
      } finally {
        await storage.close?.();
      }
    },
  };
}
