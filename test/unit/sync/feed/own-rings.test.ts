import { describe, expect, it } from 'vitest';
import type { DoorbellRing } from '../../../../src/storage/contract/types.js';
import { skippingOwnRings } from '../../../../src/sync/feed/own-rings.js';

/** A store's doorbell the test rings by hand, and the rings its follower got. */
function doorbell() {
  const listeners = new Set<(ring?: DoorbellRing) => void>();
  const onChange = (listener: (ring?: DoorbellRing) => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
  const rang = (ring?: DoorbellRing) => {
    for (const listener of listeners) listener(ring);
  };
  return { onChange, rang, listeners };
}

describe('skippingOwnRings', () => {
  it("rings the follower for another origin's writes, for writes of no origin and for a bare ring", () => {
    const store = doorbell();
    let rings = 0;
    skippingOwnRings(store.onChange, 'me')(() => rings++);
    store.rang({ origin: 'someone else' });
    store.rang({});
    store.rang();
    expect(rings).toBe(3);
  });

  it('does not ring the follower for a ring that names its own origin', () => {
    const store = doorbell();
    let rings = 0;
    skippingOwnRings(store.onChange, 'me')(() => rings++);
    store.rang({ origin: 'me' });
    expect(rings).toBe(0);
    store.rang({ origin: 'me ' });
    expect(rings).toBe(1);
  });

  it("returns the store's unsubscribe", () => {
    const store = doorbell();
    const unsubscribe = skippingOwnRings(store.onChange, 'me')(() => {});
    expect(store.listeners.size).toBe(1);
    unsubscribe();
    expect(store.listeners.size).toBe(0);
  });
});
