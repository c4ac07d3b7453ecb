import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createHybridCache,
  MemoryStorage,
  type StorageCallOptions,
  type VersionedWrite,
} from '../../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../../src/storage/contract/version.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { silentLogger } from '../../../helpers/cache.js';
import { pendingItem, pendingValue } from '../../../helpers/outbox.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-reserved-upgrade-'));
  path = join(dir, 'outbox.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A store that answers its version high-water mark only once `answerMark()` is called, and holds
 * every write until `releaseWrites()`; `firstWrite` resolves when the first one arrives.
 */
class SlowStore extends MemoryStorage {
  markReads = 0;
  readonly batches: VersionedWrite[][] = [];
  #answerMark: () => void = () => {};
  readonly #markAnswered = new Promise<void>((resolve) => (this.#answerMark = resolve));
  #releaseWrites: () => void = () => {};
  readonly #writesReleased = new Promise<void>((resolve) => (this.#releaseWrites = resolve));
  #wrote: () => void = () => {};
  readonly firstWrite = new Promise<void>((resolve) => (this.#wrote = resolve));

  answerMark(): void {
    this.#answerMark();
  }

  releaseWrites(): void {
    this.#releaseWrites();
  }

  override async highWaterMark(opts?: StorageCallOptions): Promise<number> {
    this.markReads++;
    await this.#markAnswered;
    return super.highWaterMark(opts);
  }

  override async apply(writes: VersionedWrite[], opts?: StorageCallOptions) {
    this.batches.push(structuredClone(writes));
    this.#wrote();
    await this.#writesReleased;
    return super.apply(writes, opts);
  }
}

/** What a crash right now would leave in the outbox: its files copied aside and read. */
let copies = 0;
function outboxAfterCrash() {
  const copy = join(dir, `crash-${++copies}.db`);
  copyFileSync(path, copy);
  if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${copy}-wal`);
  const db = new Database(copy, { readonly: true });
  try {
    return {
      values: db
        .prepare('SELECT key, version, ends_log_at, unanchored FROM pending ORDER BY key')
        .raw()
        .all() as Array<[string, number, number, number]>,
      items: db.prepare('SELECT id, version, unanchored FROM pending_items ORDER BY id').raw().all() as Array<
        [string, number, number]
      >,
      reserved: db
        .prepare('SELECT old_version, new_version FROM reserved_versions ORDER BY 1')
        .raw()
        .all() as Array<[number, number]>,
    };
  } finally {
    db.close();
  }
}

describe('an outbox the previous release left with versions reserved for unanchored rows', () => {
  it('replays those rows with their reserved versions, and the next anchor writes them into the rows', async () => {
    // The previous release: its clock was behind, so it wrote 'a', the item and 'd' unanchored at
    // low versions; when its mark arrived it reserved new ones (from R) and wrote 'c' after that.
    // It crashed before re-minting the rows.
    const old = 1_000;
    const R = Date.now() * LOGICAL_SLOTS;
    const writer = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      writer.append({ ...pendingValue('a', old), unanchored: true }),
      writer.append({ ...pendingItem('log', 'i1', old + 1), unanchored: true }),
      writer.append({ ...pendingValue('d', old + 3), unanchored: true }),
      writer.append(pendingValue('c', R + 5)),
    ]);
    writer.close();
    const raw = new Database(path);
    // 'd' was written over an unflushed delete: it ends the older items of its key below itself.
    raw.prepare("UPDATE pending SET ends_log_at = ? WHERE key = 'd'").run(old + 2);
    const reserve = raw.prepare('INSERT INTO reserved_versions (old_version, new_version) VALUES (?, ?)');
    reserve.run(old, R);
    reserve.run(old + 1, R + 1);
    reserve.run(old + 3, R + 2);
    raw.close();

    // Since then, another instance an hour ahead wrote to the store.
    const storage = new SlowStore();
    const mark = (Date.now() + 3_600_000) * LOGICAL_SLOTS;
    await MemoryStorage.prototype.apply.call(storage, [
      { key: 'elsewhere', version: mark, json: '"theirs"', expiresAt: null },
    ]);
    const cache = await createHybridCache<unknown>({
      storage,
      outbox: { path, durability: 'process' },
      flush: { batchSize: 50, intervalMs: 5, concurrency: 1 },
      logger: silentLogger,
    });
    // A write of this process before its mark arrives.
    await cache.set('fresh', 'new');

    // Replay read the rows and wrote nothing to them; nothing is sent before the anchor.
    expect(storage.markReads).toBeGreaterThan(0);
    expect(storage.batches).toEqual([]);
    const replayed = outboxAfterCrash();
    expect(replayed.values).toEqual([
      ['a', old, 0, 1],
      ['c', R + 5, 0, 0],
      ['d', old + 3, old + 2, 1],
      ['fresh', expect.any(Number), 0, 1],
    ]);
    expect(replayed.reserved).toHaveLength(3);
    const freshBefore = replayed.values[3]?.[1] as number;
    expect(freshBefore).toBeGreaterThan(R + 5);
    expect(freshBefore).toBeLessThan(mark);

    storage.answerMark();
    await storage.firstWrite;
    // The anchor committed before the first write was sent: the reserved versions are in the rows,
    // this process's write is above the store's mark, and nothing is left unanchored or reserved.
    const anchored = outboxAfterCrash();
    const fresh = anchored.values[3]?.[1] as number;
    expect(fresh).toBeGreaterThan(mark);
    expect(anchored).toEqual({
      values: [
        ['a', R, 0, 0],
        ['c', R + 5, 0, 0],
        ['d', R + 2, R + 1, 0],
        ['fresh', fresh, 0, 0],
      ],
      items: [['i1', R + 1, 0]],
      reserved: [],
    });

    storage.releaseWrites();
    await cache.flush({ timeoutMs: 5_000 });
    expect(storage.peek('a')?.version).toBe(R);
    expect(storage.peek('c')?.version).toBe(R + 5);
    expect(storage.peek('d')?.version).toBe(R + 2);
    expect(storage.peek('fresh')?.version).toBe(fresh);
    expect(storage.peekItems('log').map((item) => [item.id, item.version])).toEqual([['i1', R + 1]]);
    // What was sent carried the reserved versions, never the old ones.
    const sent = storage.batches
      .flat()
      .flatMap((w) => [w.version, ...(w.items?.map((i) => i.version) ?? [])]);
    expect(sent.filter((version) => version <= old + 3)).toEqual([]);
    await cache.close();

    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pending()).toEqual([]);
    expect(reopened.pendingItems()).toEqual([]);
    expect(reopened.reservedVersions()).toEqual([]);
    reopened.close();
  });

  it('a crash after the anchor replays the rows with the reserved versions, anchored', async () => {
    const old = 2_000;
    const R = Date.now() * LOGICAL_SLOTS;
    const writer = SqliteOutbox.open({ path, durability: 'process' });
    await Promise.all([
      writer.append({ ...pendingValue('a', old), unanchored: true }),
      writer.append({ ...pendingItem('log', 'i1', old + 1), unanchored: true }),
    ]);
    writer.close();
    const raw = new Database(path);
    raw.exec(
      `INSERT INTO reserved_versions (old_version, new_version) VALUES (${old}, ${R}), (${old + 1}, ${R + 1})`,
    );
    raw.close();

    const storage = new SlowStore();
    const cache = await createHybridCache<unknown>({
      storage,
      outbox: { path, durability: 'process' },
      flush: { batchSize: 50, intervalMs: 5, concurrency: 1 },
      logger: silentLogger,
    });
    storage.answerMark();
    await storage.firstWrite;
    // The process dies here: the anchor is committed, the store never answered.
    const copy = join(dir, 'after-anchor.db');
    copyFileSync(path, copy);
    copyFileSync(`${path}-wal`, `${copy}-wal`);
    storage.releaseWrites();
    await cache.close();

    const replayed = SqliteOutbox.open({ path: copy, durability: 'process' });
    expect(replayed.pending()).toEqual([{ ...pendingValue('a', old), version: R }]);
    expect(replayed.pendingItems()).toEqual([
      { ...pendingItem('log', 'i1', old + 1), item: { id: 'i1', version: R + 1, json: '"i1"' } },
    ]);
    expect(replayed.reservedVersions()).toEqual([]);
    expect(replayed.highestVersion()).toBe(R + 1);
    replayed.close();
  });
});
