import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { FlushEventSink } from '../sync/types.js';
import type { CacheEvents } from './types.js';

/** The cache's listeners. Also the flusher's event sink. */
export class CacheEventHub implements FlushEventSink {
  readonly #emitter = new EventEmitter();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.#emitter.setMaxListeners(0);
  }

  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): void {
    this.#emitter.on(event, listener);
  }

  off<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): void {
    this.#emitter.off(event, listener);
  }

  wants(event: keyof CacheEvents): boolean {
    return this.#emitter.listenerCount(event) > 0;
  }

  /**
   * A listener that throws must not break the code that emitted: the exception would skip what
   * follows the emit (a retry timer never armed re-sends at once, in a loop; a flush waiter never
   * notified hangs; a breaker callback fails the call it reports on). It is logged instead.
   */
  emit<E extends keyof CacheEvents>(event: E, payload: CacheEvents[E]): void {
    try {
      this.#emitter.emit(event, payload);
    } catch (error) {
      this.#logger.error({ err: error, event }, 'a cache event listener threw; ignoring it');
    }
  }
}
