import type { Logger } from 'pino';
import type { Storage } from '../storage/contract/types.js';

/**
 * Periodically runs the store's optional `cleanup` (expired rows and tombstones older than the
 * default retention). Expired rows already read as absent; this only reclaims their space. Returns
 * a stop function.
 */
export function scheduleStoreCleanup(storage: Storage, intervalMs: number, logger: Logger): () => void {
  if (intervalMs <= 0 || !storage.cleanup) return () => {};
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    try {
      const removed = await storage.cleanup?.();
      logger.info({ removed }, 'store cleanup: removed expired rows and old tombstones');
    } catch (error) {
      logger.warn({ err: error }, 'store cleanup failed; will try again at the next interval');
    } finally {
      running = false;
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
