import { ExponentialBackoff, fullJitterGenerator, type IBackoff } from 'cockatiel';
import { requestedDelayMs } from './failure-kind.js';

export interface RetryOptions {
  baseMs: number;
  maxMs: number;
}

export interface ArmedRetry {
  attempt: number;
  delayMs: number;
}

/**
 * When to try again after a failed store call: exponential backoff with full jitter (cockatiel), never
 * sooner than the store asked, one timer at a time. A success resets the backoff.
 */
export class RetryPolicy {
  readonly #first: ExponentialBackoff<number>;
  readonly #onDue: () => void;
  #backoff: IBackoff<unknown> | undefined;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  #stopped = false;

  /** `onDue` runs when an armed retry fires. */
  constructor(options: RetryOptions, onDue: () => void) {
    this.#first = new ExponentialBackoff({
      initialDelay: options.baseMs,
      maxDelay: options.maxMs,
      generator: fullJitterGenerator,
    });
    this.#onDue = onDue;
  }

  /** Failures reported so far, including those that found a retry already armed. */
  get failures(): number {
    return this.#failures;
  }

  /** True while a retry is armed: nothing should be sent before it fires. */
  get waiting(): boolean {
    return this.#timer !== undefined;
  }

  /** A call failed: arms the next retry unless one is armed already (or stopped); returns the one it armed. */
  failed(error: unknown): ArmedRetry | undefined {
    this.#failures++;
    if (this.#timer || this.#stopped) return undefined;
    this.#backoff = (this.#backoff ?? this.#first).next(undefined);
    this.#attempt++;
    const delayMs = Math.max(this.#backoff.duration, requestedDelayMs(error));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#onDue();
    }, delayMs);
    return { attempt: this.#attempt, delayMs };
  }

  succeeded(): void {
    this.#backoff = undefined;
    this.#attempt = 0;
  }

  /** Cancels an armed retry and arms no more. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
