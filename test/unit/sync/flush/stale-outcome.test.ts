import { describe, expect, it } from 'vitest';
import type { VersionedWrite } from '../../../../src/storage/contract/types.js';
import { staleOutcome } from '../../../../src/sync/flush/stale-outcome.js';

const value: VersionedWrite = { key: 'k', version: 100, json: '"v"', expiresAt: null };
const items: VersionedWrite = {
  key: 'k',
  version: 100,
  json: null,
  expiresAt: null,
  appendedAt: 0,
  items: [{ id: 'i', version: 100, json: '1' }],
};

describe('what a stale answer means for the write it refused', () => {
  it('a newer stored version supersedes a value or items', () => {
    expect(staleOutcome(value, { storedVersion: 101 })).toBe('superseded');
    expect(staleOutcome(items, { storedVersion: 101 })).toBe('superseded');
  });

  it('at our own version, the store saying what it holds: a lost tie, or our own earlier attempt', () => {
    expect(staleOutcome(value, { storedVersion: 100, storedDiffers: true })).toBe('superseded');
    expect(staleOutcome(value, { storedVersion: 100, storedDiffers: false })).toBe('alreadyStored');
  });

  it('at our own version (or none), the store not saying: unconfirmed', () => {
    expect(staleOutcome(value, { storedVersion: 100 })).toBe('unconfirmed');
    expect(staleOutcome(value, {})).toBe('unconfirmed');
  });

  it('items are kept once by id and never tie: stale at or below their version, they are stored', () => {
    expect(staleOutcome(items, { storedVersion: 100 })).toBe('alreadyStored');
    expect(staleOutcome(items, { storedVersion: 100, storedDiffers: true })).toBe('alreadyStored');
    expect(staleOutcome(items, {})).toBe('alreadyStored');
  });
});
