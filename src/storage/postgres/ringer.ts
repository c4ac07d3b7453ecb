import type { DoorbellRing } from '../contract/types.js';

/**
 * An origin longer than this is left out of the ring (which then rings every follower): a NOTIFY
 * payload must stay under 8,000 bytes, and the caches' own origins are UUIDs.
 */
export const MAX_RING_ORIGIN_LENGTH = 200;

/**
 * The payload of a ring for `topic` (`<schema>.<table>`): the topic alone, or followed by a space
 * and the origin every write behind it carried, so that the cache that wrote them need not read
 * its own changes back. A follower of a release before origins hears only the bare topic.
 */
export function ringPayload(topic: string, origin: string | undefined): string {
  return origin === undefined || origin.length > MAX_RING_ORIGIN_LENGTH ? topic : `${topic} ${origin}`;
}

/**
 * The ring a payload on the doorbell's channel makes for `topic`, or undefined if it is for
 * another table. An empty payload (a bare `NOTIFY hybrid_cache` by hand) rings every table.
 */
export function readRing(payload: string | undefined, topic: string): DoorbellRing | undefined {
  if (!payload || payload === topic) return {};
  if (!payload.startsWith(`${topic} `)) return undefined;
  const origin = payload.slice(topic.length + 1);
  return origin ? { origin } : {};
}

/**
 * Rings the doorbell after writes commit, one ring at a time: writes that commit while a ring is
 * on its way make exactly one more (that ring may have been sent before they committed), so a
 * burst of writes costs a few NOTIFYs, not one each. A ring names the writes' origin when they all
 * had the same one. A ring that fails is dropped (`onError`): followers still read the feed at
 * their poll interval.
 */
export class Ringer {
  readonly #send: (origin: string | undefined) => Promise<void>;
  readonly #onError: (error: unknown) => void;
  #ringing: Promise<void> | undefined;
  /** Whether writes committed since the last ring left; and the origin they share, if any. */
  #waiting = false;
  #origin: string | undefined;
  #stopped = false;

  constructor(
    send: (origin: string | undefined) => Promise<void>,
    onError: (error: unknown) => void = () => {},
  ) {
    this.#send = send;
    this.#onError = onError;
  }

  /** Writes with `origin` (or none) committed. */
  ring(origin?: string): void {
    if (this.#stopped) return;
    this.#origin = !this.#waiting || this.#origin === origin ? origin : undefined;
    this.#waiting = true;
    if (!this.#ringing) this.#sendWaiting();
  }

  #sendWaiting(): void {
    const origin = this.#origin;
    this.#waiting = false;
    this.#origin = undefined;
    this.#ringing = this.#send(origin)
      .catch(this.#onError)
      .finally(() => {
        this.#ringing = undefined;
        if (this.#waiting && !this.#stopped) this.#sendWaiting();
      });
  }

  /** Rings no more; resolves once the ring on its way (if any) is done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#ringing;
  }
}
