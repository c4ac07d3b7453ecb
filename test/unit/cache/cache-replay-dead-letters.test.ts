import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeadLetter } from '../../../src/index.js';
import { SqliteOutbox } from '../../../src/sync/outbox/sqlite-outbox.js';
import { memoryCache } from '../../helpers/cache.js';
import { pendingItem, pendingValue } from '../../helpers/outbox.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-replay-letters-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('rows found damaged when an outbox is replayed', () => {
  it('are announced as deadLetter events to a listener attached as soon as the cache is created', async () => {
    const path = join(dir, 'outbox.db');
    const earlier = SqliteOutbox.open({ path, durability: 'process' });
    await earlier.append(pendingValue('ok', 1));
    await earlier.append(pendingValue('bad', 2, '{"broken'));
    await earlier.append(pendingItem('log', 'bad-item', 3, 'not json'));
    await earlier.close();

    const { cache, storage } = await memoryCache({ outbox: { path, durability: 'process' } });
    const heard: DeadLetter[] = [];
    cache.on('deadLetter', (letter) => heard.push(letter));
    expect(cache.stats().deadLetters).toBe(2);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(heard.map((letter) => [letter.key, letter.itemId])).toEqual([
      ['bad', undefined],
      ['log', 'bad-item'],
    ]);
    expect(heard).toEqual(cache.deadLetters());
    await cache.flush();
    expect(storage.inner.peek('ok')?.json).toBe('1');
    expect(storage.inner.peek('bad')).toBeUndefined();
    await cache.close();
  });
});
