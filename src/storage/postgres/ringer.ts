/**
 * Rings the doorbell after writes commit, one ring at a time: writes that commit while a ring is
 * on its way make exactly one more (that ring may have been sent before they committed), so a
 * burst of writes costs a few NOTIFYs, not one each. A ring that fails is dropped (`onError`):
 * followers still read the feed at their poll interval.
 */
export class Ringer {
  readonly #send: () => Promise<void>;
  readonly #onError: (error: unknown) => void;
  #ringing: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(send: () => Promise<void>, onError: (error: unknown) => void = () => {}) {
    this.#send = send;
    this.#onError = onError;
  }

  ring(): void {
    if (this.#stopped) return;
    if (this.#ringing) {
      this.#again = true;
      return;
    }
    this.#ringing = this.#send()
      .catch(this.#onError)
      .finally(() => {
        this.#ringing = undefined;
        if (this.#again) {
          this.#again = false;
          this.ring();
        }
      });
  }

  /** Rings no more; resolves once the ring on its way (if any) is done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#ringing;
  }
}
