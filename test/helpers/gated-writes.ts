import type { StorageCallOptions, VersionedWrite } from '../../src/index.js';
import { MemoryStorage } from '../../src/index.js';
import { FaultyStorage } from '../../src/testing/index.js';

/** A MemoryStorage whose writes wait while `hold()` is in effect; reads go through. Records each write call. */
export class GatedWrites extends FaultyStorage<MemoryStorage> {
  readonly batches: VersionedWrite[][] = [];
  #gate: Promise<void> | undefined;
  #release: () => void = () => {};

  constructor() {
    super(new MemoryStorage());
  }

  hold(): void {
    this.#gate = new Promise((resolve) => (this.#release = resolve));
  }

  release(): void {
    this.#gate = undefined;
    this.#release();
  }

  override async apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    this.batches.push(structuredClone(writes));
    await this.#gate;
    return super.apply(writes, opts);
  }
}
