import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type HybridCache, MemoryStorage } from '../../src/index.js';
import { FaultyStorage } from '../../src/testing/index.js';
import { memoryCache } from '../helpers/cache.js';
import { fillDisk, freeBytesAt, smallDisk } from '../helpers/outbox.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-full-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const kilobyte = (i: number) => ({ i, text: 'x'.repeat(1_000) });

// Only a real filesystem can be filled to its last byte; mounting one takes root, which CI has.
describe.runIf(process.getuid?.() === 0)('a restart on a 4 MiB tmpfs with no byte free (root only)', () => {
  let disk: ReturnType<typeof smallDisk>;
  let opened: HybridCache[];
  beforeEach(() => {
    disk = smallDisk(dir);
    expect(disk.maxFileBytes, 'mounting a tmpfs failed').toBeUndefined();
    opened = [];
  });
  afterEach(async () => {
    for (const cache of opened)
      if (cache.isOpen) await cache.close({ timeoutMs: 100 }).catch(() => undefined);
    disk.release();
  });

  async function open(storage: FaultyStorage<MemoryStorage>): Promise<HybridCache> {
    const { cache } = await memoryCache({ storage, outbox: { path: disk.path, durability: 'process' } });
    opened.push(cache);
    return cache;
  }

  /** Fills the disk with a file of its own; returns that file's path. */
  function fillTheDisk(): string {
    const filler = join(dirname(disk.path), 'filler');
    fillDisk(filler);
    expect(freeBytesAt(dirname(disk.path))).toBeLessThan(4_096);
    return filler;
  }

  it('opens and replays, refuses new writes, flushes the backlog, and takes writes once space is freed', async () => {
    const storage = new FaultyStorage(new MemoryStorage());
    const first = await open(storage);
    // Flushed once, so the clock is anchored to the store and the rows left need no new versions.
    await first.set('anchored', kilobyte(0));
    await first.flush();
    storage.goDown();
    for (let i = 0; i < 20; i++) await first.set(`kept-${i}`, kilobyte(i));
    expect((await first.close({ timeoutMs: 50 })).pending).toBe(20);
    const filler = fillTheDisk();

    const cache = await open(storage);
    expect(cache.stats().pending).toBe(20);
    expect(await cache.get('kept-7')).toEqual(kilobyte(7));
    await expect(cache.set('refused', kilobyte(0))).rejects.toThrow(/disk is (nearly )?full/);
    expect(cache.stats().outboxWritable).toBe(false);

    storage.comeUp();
    await cache.flush();
    expect(storage.inner.peek('kept-19')?.json).toBe(JSON.stringify(kilobyte(19)));

    rmSync(filler);
    await vi.waitFor(() => expect(cache.stats().outboxWritable).toBe(true), {
      timeout: 30_000,
      interval: 50,
    });
    await cache.set('accepted', kilobyte(1));
    await cache.flush();
    expect(storage.inner.peek('accepted')).toBeDefined();
  }, 60_000);

  it('opens with nothing pending, though an earlier anchor left reserved versions', async () => {
    const storage = new FaultyStorage(new MemoryStorage());
    // Accepted before the store's mark was known: the anchor reserves (and records) new versions.
    storage.goDown();
    const first = await open(storage);
    for (let i = 0; i < 200; i++) await first.set(`sent-${i}`, kilobyte(i));
    storage.comeUp();
    expect((await first.close()).pending).toBe(0);
    fillTheDisk();

    const cache = await open(storage);
    expect(cache.stats().pending).toBe(0);
    expect(await cache.get('sent-199')).toEqual(kilobyte(199));
    await expect(cache.set('refused', kilobyte(0))).rejects.toThrow(/disk is (nearly )?full/);
  }, 60_000);
});
