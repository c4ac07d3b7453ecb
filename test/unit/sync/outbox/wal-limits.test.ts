import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CHECKPOINT_AT_BYTES,
  walBytesUpperBound,
  walLimits,
} from '../../../../src/sync/outbox/wal-limits.js';

describe('walLimits', () => {
  it('without a file cap: no page cap, no log budget, the default checkpoint threshold of the durability', () => {
    expect(walLimits(undefined, 4096, 'process')).toEqual({
      maxPageCount: undefined,
      walBudgetBytes: undefined,
      checkpointAtBytes: DEFAULT_CHECKPOINT_AT_BYTES.process,
    });
    expect(walLimits(undefined, 4096, 'fsync')).toEqual({
      maxPageCount: undefined,
      walBudgetBytes: undefined,
      checkpointAtBytes: DEFAULT_CHECKPOINT_AT_BYTES.fsync,
    });
  });

  it('splits the cap so that a full main file plus a log frame for each of its pages fit under it', () => {
    // (821_631 - 32) / (4096 + 4096 + 24) = 99.99…: 99 pages.
    const limits = walLimits(821_631, 4096, 'process');
    expect(limits).toEqual({
      maxPageCount: 99,
      walBudgetBytes: 821_631 - 99 * 4096,
      checkpointAtBytes: Math.floor((821_631 - 99 * 4096) / 2),
    });
    const { maxPageCount, walBudgetBytes } = limits as { maxPageCount: number; walBudgetBytes: number };
    expect(maxPageCount * 4096 + walBudgetBytes).toBe(821_631);
    expect(walBudgetBytes).toBeGreaterThanOrEqual(32 + maxPageCount * (4096 + 24));
  });

  it('one more byte of cap makes room for one more page', () => {
    expect(walLimits(821_632, 4096, 'process').maxPageCount).toBe(100);
  });

  it('a large cap keeps the default checkpoint threshold', () => {
    const limits = walLimits(2 ** 30, 4096, 'fsync');
    expect(limits.checkpointAtBytes).toBe(DEFAULT_CHECKPOINT_AT_BYTES.fsync);
    expect(limits.maxPageCount).toBe(Math.floor((2 ** 30 - 32) / (4096 + 4096 + 24)));
  });

  it('a cap smaller than a page still allows one page, and no log budget below zero', () => {
    expect(walLimits(100, 4096, 'process')).toEqual({
      maxPageCount: 1,
      walBudgetBytes: 0,
      checkpointAtBytes: 0,
    });
  });
});

describe('walBytesUpperBound', () => {
  it('an empty transaction writes the header page', () => {
    expect(walBytesUpperBound([], 4096, Number.POSITIVE_INFINITY)).toBe(32 + 4096 + 24);
  });

  it('counts a leaf, a split and a parent per row, plus the overflow pages of its bytes', () => {
    // 1 header page + (3 + 1) for 100 bytes + (3 + 2) for 4,100 bytes (more than a page's payload).
    expect(walBytesUpperBound([100, 4100], 4096, Number.POSITIVE_INFINITY)).toBe(32 + 10 * (4096 + 24));
  });

  it('never counts more pages than the main file can hold', () => {
    expect(walBytesUpperBound([100, 4100], 4096, 3)).toBe(32 + 3 * (4096 + 24));
  });
});
