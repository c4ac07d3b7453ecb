import {
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  TimeoutStrategy,
  timeout,
  wrap,
} from 'cockatiel';
import type { Health } from '../types.js';
import { classifyFailure } from './failure-kind.js';

export interface StoreGuardOptions {
  failureThreshold: number;
  halfOpenAfterMs: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  onHealthChange: (from: Health, to: Health, error?: Error) => void;
}

type Call<T> = (signal: AbortSignal) => Promise<T>;

/**
 * Every store call goes through here: a per-call timeout inside one shared circuit breaker
 * (cockatiel policies). Transient and configuration failures count towards opening the breaker;
 * a permanent failure is the item's fault, not the store's, so it does not.
 */
export class StoreGuard {
  readonly #breaker;
  readonly #read;
  readonly #write;
  readonly #followTimeout;
  readonly #onHealthChange: StoreGuardOptions['onHealthChange'];
  #consecutiveFailures = 0;
  #health: Health = 'healthy';
  #lastError: Error | undefined;
  #stopped = false;

  constructor(options: StoreGuardOptions) {
    this.#onHealthChange = options.onHealthChange;
    this.#breaker = circuitBreaker(
      // Calls aborted by close() fail through no fault of the store: they must not move health.
      handleWhen((error) => !this.#stopped && classifyFailure(error) !== 'permanent'),
      {
        halfOpenAfter: options.halfOpenAfterMs,
        breaker: new ConsecutiveBreaker(options.failureThreshold),
      },
    );
    this.#breaker.onSuccess(() => {
      this.#consecutiveFailures = 0;
      this.#refresh();
    });
    this.#breaker.onFailure(({ handled, reason }) => {
      if (!handled) return;
      this.#consecutiveFailures++;
      if ('error' in reason) this.#lastError = asError(reason.error);
      this.#refresh();
    });
    this.#breaker.onStateChange(() => this.#refresh());
    this.#read = wrap(this.#breaker, timeout(options.readTimeoutMs, TimeoutStrategy.Aggressive));
    this.#write = wrap(this.#breaker, timeout(options.writeTimeoutMs, TimeoutStrategy.Aggressive));
    this.#followTimeout = timeout(options.readTimeoutMs, TimeoutStrategy.Aggressive);
  }

  get health(): Health {
    return this.#health;
  }

  /** True while calls are refused without reaching the store. */
  get isOpen(): boolean {
    return this.#breaker.state === CircuitState.Open || this.#breaker.state === CircuitState.Isolated;
  }

  /** The cache is closing: failures from here on are its own aborts, not the store's. */
  stop(): void {
    this.#stopped = true;
  }

  read<T>(call: Call<T>, signal?: AbortSignal): Promise<T> {
    return this.#read.execute(({ signal: inner }) => call(inner), signal);
  }

  /**
   * A read of the change feed: the read deadline, outside the breaker. Polls are frequent, so their
   * successes would hide failing writes from it, and while it is open no poll would see the store
   * come back. A feed that cannot be read shows in the follower's state instead.
   */
  follow<T>(call: Call<T>): Promise<T> {
    return this.#followTimeout.execute(({ signal }) => call(signal));
  }

  write<T>(call: Call<T>, signal?: AbortSignal): Promise<T> {
    return this.#write.execute(({ signal: inner }) => call(inner), signal);
  }

  #refresh(): void {
    const state = this.#breaker.state;
    let next: Health;
    if (state === CircuitState.Open || state === CircuitState.Isolated) next = 'offline';
    else if (state === CircuitState.HalfOpen || this.#consecutiveFailures > 0) next = 'degraded';
    else next = 'healthy';
    if (next === this.#health) return;
    const previous = this.#health;
    this.#health = next;
    this.#onHealthChange(previous, next, next === 'healthy' ? undefined : this.#lastError);
  }
}

/** cockatiel 4 reports a failure's reason as `unknown`: anything can be thrown. */
function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}
