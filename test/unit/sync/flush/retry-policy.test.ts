import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TransientStorageError } from '../../../../src/index.js';
import { RetryPolicy } from '../../../../src/sync/flush/retry-policy.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function policy(baseMs = 100, maxMs = 1_000) {
  const due = { count: 0 };
  const retry = new RetryPolicy({ baseMs, maxMs }, () => due.count++);
  return { retry, due };
}

describe('RetryPolicy', () => {
  it('arms one retry at a time, counting every failure, and fires it after its delay', async () => {
    const { retry, due } = policy();
    const armed = retry.failed(new Error('down'));
    expect(armed?.attempt).toBe(1);
    expect(armed?.delayMs).toBeGreaterThanOrEqual(0);
    expect(armed?.delayMs).toBeLessThanOrEqual(100);
    expect(retry.waiting).toBe(true);
    expect(retry.failed(new Error('down again'))).toBeUndefined();
    expect(retry.failures).toBe(2);
    await vi.advanceTimersByTimeAsync(armed?.delayMs ?? 0);
    expect(due.count).toBe(1);
    expect(retry.waiting).toBe(false);
  });

  it('counts attempts up while failures continue, and starts again after a success', async () => {
    const { retry } = policy();
    for (let attempt = 1; attempt <= 3; attempt++) {
      const armed = retry.failed(new Error('down'));
      expect(armed?.attempt).toBe(attempt);
      expect(armed?.delayMs).toBeLessThanOrEqual(1_000);
      await vi.advanceTimersByTimeAsync(armed?.delayMs ?? 0);
    }
    retry.succeeded();
    expect(retry.failed(new Error('down'))?.attempt).toBe(1);
  });

  it('waits at least as long as a transient store error asked', () => {
    const { retry } = policy(10, 20);
    const armed = retry.failed(new TransientStorageError('busy', { retryAfterMs: 5_000 }));
    expect(armed?.delayMs).toBe(5_000);
  });

  it('once stopped, cancels the armed retry and arms no more, still counting failures', async () => {
    const { retry, due } = policy();
    retry.failed(new Error('down'));
    retry.stop();
    expect(retry.waiting).toBe(false);
    expect(retry.failed(new Error('down'))).toBeUndefined();
    expect(retry.failures).toBe(2);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(due.count).toBe(0);
  });
});
