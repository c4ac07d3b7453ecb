import pino from 'pino';
import { createHybridCache, type HybridCache, type Storage } from '../../src/index.js';

/**
 * A cache that follows the store's feed but would poll it only once a minute and vouches for two:
 * only the doorbell makes it read the feed sooner. The caller closes it.
 */
export function slowPollingCache(storage: Storage): Promise<HybridCache<number>> {
  return createHybridCache<number>({
    storage,
    outbox: { durability: 'none' },
    logger: pino({ level: 'silent' }),
    flush: { intervalMs: 5 },
    feed: { pollIntervalMs: 60_000 },
    maxStalenessMs: 120_000,
  });
}
