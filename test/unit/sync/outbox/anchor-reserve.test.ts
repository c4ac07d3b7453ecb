import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PendingItem, PendingWrite, VersionChange } from '../../../../src/sync/outbox/outbox.js';
import { anchorRewriteLogBytes } from '../../../../src/sync/outbox/space-policy.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { rowByteLength } from '../../../../src/sync/outbox/unanchored-tally.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

/**
 * The room a nearly full disk keeps for the anchoring step's rewrite of unanchored rows, with free
 * space injected (no root, no timers), and the rewrite itself at the edge of that room and of a cap.
 * The real full disk is test/root/anchor-full-outbox.test.ts.
 */

let dir: string;
let path: string;
let env: TestEnvironment;
let opened: SqliteOutbox[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-anchor-reserve-'));
  path = join(dir, 'outbox.db');
  env = new TestEnvironment();
  opened = [];
});
afterEach(async () => {
  for (const outbox of opened) await outbox.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(maxFileBytes?: number): SqliteOutbox {
  const outbox = SqliteOutbox.open({
    path,
    durability: 'process',
    environment: env,
    maintenanceIntervalMs: 60_000,
    ...(maxFileBytes ? { maxFileBytes } : {}),
  });
  opened.push(outbox);
  return outbox;
}

const KiB = 1024;
const sizeOf = (p: string) => statSync(p, { throwIfNoEntry: false })?.size ?? 0;
const kilobyte = (key: string, version: number, unanchored: boolean, bytes = 1_000): PendingWrite => ({
  key,
  version,
  json: JSON.stringify({ version, text: 'x'.repeat(bytes) }),
  expiresAt: null,
  queuedAt: version,
  ...(unanchored ? { unanchored: true } : {}),
});
const NEARLY_FULL = /could not record the write: the disk is nearly full/;
const accepted = (written: Promise<void>) =>
  written.then(
    () => true,
    () => false,
  );

/**
 * Free space at which a fresh outbox takes two 1 KB rows when they are anchored (it needs ~118 KiB:
 * the write, the room to delete the backlog) but not when both are unanchored (~190 KiB: the room to
 * rewrite them too).
 */
const BETWEEN = 160 * KiB;

describe('low-disk admission keeps room for the anchoring rewrite (free space injected)', () => {
  it('takes both rows at that free space when they are anchored', async () => {
    env.free = BETWEEN;
    const outbox = open();
    expect(await accepted(outbox.append(kilobyte('a', 1, false)))).toBe(true);
    expect(await accepted(outbox.append(kilobyte('b', 2, false)))).toBe(true);
  });

  it.each([
    ['new versions', [{ key: 'a', from: 1, to: 10 }]],
    ['versions kept', []],
  ])(
    'refuses the second unanchored row, and takes the row once the first is anchored (%s)',
    async (_, changes: VersionChange[]) => {
      env.free = BETWEEN;
      const outbox = open();
      await outbox.append(kilobyte('a', 1, true));
      await expect(outbox.append(kilobyte('b', 2, true))).rejects.toThrow(NEARLY_FULL);
      expect(outbox.pending().map((p) => p.key)).toEqual(['a']);

      outbox.anchor(changes, 10);
      await outbox.append(kilobyte('b', 11, false));
      expect(outbox.failure).toBeUndefined();
      expect(outbox.pending().map((p) => [p.key, p.unanchored ?? false])).toEqual([
        ['a', false],
        ['b', false],
      ]);
    },
  );

  it('stays refusing on the tick while the rows are unanchored, and takes writes again as soon as they are anchored', async () => {
    env.free = BETWEEN;
    const outbox = open();
    await outbox.append(kilobyte('a', 1, true));
    await expect(outbox.append(kilobyte('b', 2, true))).rejects.toThrow(NEARLY_FULL);
    env.tick();
    expect(outbox.failure?.message).toMatch(NEARLY_FULL);

    outbox.anchor([{ key: 'a', from: 1, to: 10 }], 10);
    expect(outbox.failure).toBeUndefined();
    expect(env.ticks).toBe(1);
  });

  it('keeps the room for rows an earlier process left unanchored', async () => {
    const first = open();
    await first.append(kilobyte('a', 1, true));
    await first.close();

    env.free = BETWEEN;
    const outbox = open();
    await expect(outbox.append(kilobyte('b', 2, false))).rejects.toThrow(NEARLY_FULL);
    outbox.anchor([], 1);
    await outbox.append(kilobyte('b', 2, false));
    expect(outbox.pending().map((p) => p.key)).toEqual(['a', 'b']);
  });
});

/** Overwrites the items table's only page with garbage (outbox closed): reading it fails. */
function damageItemsPage(): void {
  const raw = new Database(path, { readonly: true });
  const root = raw
    .prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'pending_items'")
    .pluck()
    .get() as number;
  raw.close();
  const bytes = readFileSync(path);
  const pageSize = bytes.readUInt16BE(16);
  bytes.fill(0xab, pageSize * (root - 1), pageSize * root);
  writeFileSync(path, bytes);
}

/** Pages the outbox's file holds that are not free (read with the outbox closed). */
function pagesInUse(): number {
  const raw = new Database(path, { readonly: true });
  try {
    const count = raw.pragma('page_count', { simple: true }) as number;
    return count - (raw.pragma('freelist_count', { simple: true }) as number);
  } finally {
    raw.close();
  }
}

describe('unanchored rows that cannot be counted', () => {
  it('keep room for a rewrite of every page in use, and the write is refused for room, not for the damage', async () => {
    const first = open();
    await first.append(kilobyte('a', 1, false));
    await first.close();
    damageItemsPage();

    env.free = BETWEEN;
    const outbox = open();
    // Counted, the rows are anchored and this second row fits (the first test above); uncounted,
    // room for rewriting the whole file is kept. The replay is what names the damage.
    await expect(outbox.append(kilobyte('b', 2, false))).rejects.toThrow(NEARLY_FULL);
    expect(() => outbox.pendingItems()).toThrow(/damaged|malformed/);
  });
});

describe('the anchoring rewrite at the edge of the room kept for it', () => {
  it('writes no more log than the bound admission keeps free, each page logged once however many rows', async () => {
    // More pages than the default page cache holds (it spills them to the log mid-transaction), of
    // rows that fit their leaves, so every page in use is rewritten.
    const values = Array.from({ length: 4_000 }, (_, i) => kilobyte(`k${i}`, i + 1, true, 700));
    const items: PendingItem[] = Array.from({ length: 300 }, (_, i) => ({
      key: `log${i % 7}`,
      item: { id: `item-${i}`, version: 3_000 + i, json: JSON.stringify('y'.repeat(300)) },
      expiresAt: null,
      queuedAt: 3_000 + i,
      unanchored: true,
    }));
    const first = open();
    for (const row of [...values, ...items]) await first.append(row);
    await first.close();
    const inUse = pagesInUse();
    const rows = {
      count: values.length + items.length,
      bytes: [...values, ...items].reduce((sum, row) => sum + rowByteLength(row), 0),
    };

    const outbox = open();
    const changes: VersionChange[] = [
      ...values.map((v) => ({ key: v.key, from: v.version, to: v.version + 10_000 })),
      ...items.map((it) => ({
        key: it.key,
        from: it.item.version,
        to: it.item.version + 10_000,
        itemId: it.item.id,
      })),
    ];
    const walBefore = sizeOf(`${path}-wal`);
    outbox.anchor(changes, 20_000);
    const logged = sizeOf(`${path}-wal`) - walBefore;
    expect(logged).toBeGreaterThan(inUse * 0.9 * 4_096);
    expect(logged).toBeLessThanOrEqual(anchorRewriteLogBytes(rows, 4_096, inUse));
    expect(outbox.pending().every((p) => p.version > 10_000 && !p.unanchored)).toBe(true);
  });

  it.each([
    ['rows that fit their leaves', 700],
    ['rows with overflow pages', 1_000],
  ])(
    'under a cap, %s: an outbox filled with unanchored rows until refused takes the rewrite, file and log within the cap',
    async (_, bytes) => {
      const maxFileBytes = 1_024 * KiB;
      const outbox = open(maxFileBytes);
      let count = 0;
      while (await accepted(outbox.append(kilobyte(`k${count}`, count + 1, true, bytes)))) count++;
      expect(count).toBeGreaterThan(20);
      expect(outbox.failure?.message).toMatch(/maxFileBytes/);

      outbox.anchor(
        Array.from({ length: count }, (_, i) => ({ key: `k${i}`, from: i + 1, to: i + 1_000_001 })),
        count + 1_000_000,
      );
      expect(sizeOf(path) + sizeOf(`${path}-wal`)).toBeLessThanOrEqual(maxFileBytes);
      const pending = outbox.pending();
      expect(pending).toHaveLength(count);
      expect(pending.every((p) => p.version > 1_000_000 && !p.unanchored)).toBe(true);
    },
  );
});
