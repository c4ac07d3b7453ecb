import { HealingOutbox } from '../sync/outbox/healing-outbox.js';
import type { Outbox } from '../sync/outbox/outbox.js';
import { MemoryOutbox } from '../sync/outbox/outbox.js';
import { ABANDON, HybridCache } from './hybrid-cache.js';
import { resolveOptions } from './options.js';
import type { HybridCacheOptions } from './types.js';

/** Creates a cache, opening its outbox and replaying any writes an earlier process left there. */
export async function createHybridCache<V = unknown>(options: HybridCacheOptions): Promise<HybridCache<V>> {
  const resolved = resolveOptions(options);
  const { path, durability, maxFileBytes } = resolved.outbox;
  const outbox: Outbox =
    durability === 'none'
      ? new MemoryOutbox()
      : HealingOutbox.open({
          path: path as string,
          durability,
          logger: resolved.logger,
          ...(maxFileBytes ? { maxFileBytes } : {}),
        });
  const cache = new HybridCache<V>(resolved, outbox);
  let replayed: number;
  try {
    replayed = cache.replayOutbox();
  } catch (error) {
    // Nothing may outlive a failed open: the outbox's lock would make a retry say "in use".
    await cache[ABANDON]();
    throw error;
  }
  if (replayed > 0) resolved.logger.info({ replayed }, 'replayed unflushed writes from the outbox');
  cache.anchorClock();
  cache.followFeed();
  return cache;
}
