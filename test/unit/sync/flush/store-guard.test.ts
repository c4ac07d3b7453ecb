import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Health, PermanentStorageError, TransientStorageError } from '../../../../src/index.js';
import { StoreGuard } from '../../../../src/sync/flush/store-guard.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

type Change = [from: Health, to: Health, error: Error | undefined];

function guard(failureThreshold = 3) {
  const changes: Change[] = [];
  const g = new StoreGuard({
    failureThreshold,
    halfOpenAfterMs: 1_000,
    readTimeoutMs: 500,
    writeTimeoutMs: 500,
    onHealthChange: (from, to, error) => changes.push([from, to, error]),
  });
  return { g, changes };
}

const fail = (g: StoreGuard, error: unknown) =>
  g
    .write(() => Promise.reject(error))
    .then(
      () => expect.unreachable('the call should fail'),
      (thrown: unknown) => thrown,
    );
const succeed = (g: StoreGuard) => g.write(() => Promise.resolve('ok'));

describe('StoreGuard health', () => {
  it('goes healthy → degraded → offline → degraded (half-open) → healthy, passing the last error until healthy', async () => {
    const { g, changes } = guard(3);
    expect(g.health).toBe('healthy');
    expect(g.isOpen).toBe(false);
    const errors = [1, 2, 3].map((i) => new TransientStorageError(`failure ${i}`));
    await fail(g, errors[0]);
    expect(g.health).toBe('degraded');
    expect(g.isOpen).toBe(false);
    await fail(g, errors[1]);
    await fail(g, errors[2]);
    expect(g.health).toBe('offline');
    expect(g.isOpen).toBe(true);
    // While open, calls are refused without reaching the store.
    const call = vi.fn(() => Promise.resolve('ok'));
    await expect(g.write(call)).rejects.toThrow();
    expect(call).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1_000);
    // The next call is the half-open probe; it succeeds.
    expect(await succeed(g)).toBe('ok');
    expect(g.health).toBe('healthy');
    expect(g.isOpen).toBe(false);
    expect(changes).toEqual([
      ['healthy', 'degraded', errors[0]],
      ['degraded', 'offline', errors[2]],
      ['offline', 'degraded', errors[2]],
      ['degraded', 'healthy', undefined],
    ]);
  });

  it('recovers from degraded to healthy on the next success, with no error attached', async () => {
    const { g, changes } = guard(3);
    const error = new Error('socket hang up');
    await fail(g, error);
    await succeed(g);
    expect(g.health).toBe('healthy');
    expect(changes).toEqual([
      ['healthy', 'degraded', error],
      ['degraded', 'healthy', undefined],
    ]);
  });

  it('does not count permanent failures (the item’s fault, not the store’s)', async () => {
    const { g, changes } = guard(2);
    for (let i = 0; i < 5; i++) await fail(g, new PermanentStorageError('violates a check constraint'));
    expect(g.health).toBe('healthy');
    expect(g.isOpen).toBe(false);
    expect(changes).toEqual([]);
  });

  it('counts configuration failures, which take the store offline', async () => {
    const { g } = guard(2);
    await fail(g, Object.assign(new Error('unauthorized'), { status: 401 }));
    await fail(g, Object.assign(new Error('unauthorized'), { status: 401 }));
    expect(g.health).toBe('offline');
  });

  it('ignores failures after stop() (the cache’s own aborts at close)', async () => {
    const { g, changes } = guard(1);
    g.stop();
    await fail(g, new TransientStorageError('aborted by close'));
    expect(g.health).toBe('healthy');
    expect(g.isOpen).toBe(false);
    expect(changes).toEqual([]);
  });
});
