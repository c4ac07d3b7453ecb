import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PendingItem, PendingWrite } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { pendingItem, pendingValue } from '../../../helpers/outbox.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-anchor-'));
  path = join(dir, 'outbox.db');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const unanchored = <T extends PendingWrite | PendingItem>(row: T): T => ({ ...row, unanchored: true });

/** Opens the outbox with background maintenance out of the way: its log grows only by commits. */
const open = () => SqliteOutbox.open({ path, durability: 'process', maintenanceIntervalMs: 60_000 });

/**
 * Transactions committed to the outbox's write-ahead log since it was last started over: frames of
 * the current log generation (its salt) that end a transaction.
 */
function logCommits(): number {
  let wal: Buffer;
  try {
    wal = readFileSync(`${path}-wal`);
  } catch {
    return 0;
  }
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salts = [wal.readUInt32BE(16), wal.readUInt32BE(20)];
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (wal.readUInt32BE(at + 8) !== salts[0] || wal.readUInt32BE(at + 12) !== salts[1]) break;
    if (wal.readUInt32BE(at + 4) !== 0) commits++;
  }
  return commits;
}

/** The outbox's files, byte for byte. */
const files = () => [readFileSync(path), readFileSync(`${path}-wal`)];

/** Reservations as the previous release recorded them when its clock was anchored (outbox closed). */
function reserve(pairs: Array<[number, number]>): void {
  const raw = new Database(path);
  const insert = raw.prepare('INSERT INTO reserved_versions (old_version, new_version) VALUES (?, ?)');
  for (const [from, to] of pairs) insert.run(from, to);
  raw.close();
}

const rows = (outbox: SqliteOutbox) => ({
  values: outbox.pending().map((p) => [p.key, p.version, p.logFloor ?? 0, p.unanchored ?? false]),
  items: outbox.pendingItems().map((p) => [p.item.id, p.item.version, p.unanchored ?? false]),
});

describe('SqliteOutbox.anchor with new versions', () => {
  it('re-versions values and items, moves floors, clears every flag and drops reservations in one transaction', async () => {
    const first = open();
    await Promise.all([
      first.append(unanchored(pendingValue('a', 5))),
      first.append(unanchored(pendingValue('b', 6))),
      first.append(unanchored(pendingItem('log', 'i1', 7))),
      first.append(pendingItem('log', 'i0', 3)),
    ]);
    first.close();
    reserve([[1, 2]]);

    const outbox = open();
    const before = logCommits();
    outbox.anchor(
      [
        { key: 'a', from: 5, to: 20, logFloor: 19 },
        { key: 'log', from: 7, to: 22, itemId: 'i1' },
      ],
      22,
    );
    // One transaction for all of it.
    expect(logCommits()).toBe(before + 1);
    const expected = {
      values: [
        ['a', 20, 19, false],
        ['b', 6, 0, false],
      ],
      items: [
        ['i0', 3, false],
        ['i1', 22, false],
      ],
    };
    expect(rows(outbox)).toEqual(expected);
    expect(outbox.reservedVersions()).toEqual([]);
    expect(outbox.highestVersion()).toBe(22);
    outbox.close();

    const reopened = open();
    expect(rows(reopened)).toEqual(expected);
    expect(reopened.highestVersion()).toBe(22);
    reopened.close();
    const check = new Database(path, { readonly: true });
    expect(check.prepare('SELECT count(*) FROM reserved_versions').pluck().get()).toBe(0);
    check.close();
  });

  it('changes nothing when the transaction fails part-way', async () => {
    const first = open();
    await Promise.all([
      first.append(unanchored(pendingValue('a', 5))),
      first.append(unanchored(pendingItem('log', 'i1', 7))),
    ]);
    first.close();
    // Garble the items table's only page: the item's update fails after the value's has run.
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

    const outbox = open();
    const before = logCommits();
    expect(() =>
      outbox.anchor(
        [
          { key: 'a', from: 5, to: 20 },
          { key: 'log', from: 7, to: 22, itemId: 'i1' },
        ],
        22,
      ),
    ).toThrow(/malformed|corrupt/i);
    expect(logCommits()).toBe(before);
    expect(outbox.pending().map((p) => [p.key, p.version, p.unanchored ?? false])).toEqual([['a', 5, true]]);
    outbox.close();
  });
});

describe('SqliteOutbox.anchor keeping every version', () => {
  it('marks the rows up to the version given anchored, across a reopen, and leaves rows above it unanchored', async () => {
    const outbox = open();
    await Promise.all([
      outbox.append(unanchored(pendingValue('a', 5))),
      outbox.append(unanchored(pendingItem('log', 'i1', 7))),
    ]);
    const before = logCommits();
    outbox.anchor([], 10);
    expect(logCommits()).toBe(before + 1);
    // A row minted later by a process whose clock has not been anchored yet.
    await outbox.append(unanchored(pendingValue('later', 11)));
    const expected = {
      values: [
        ['a', 5, 0, false],
        ['later', 11, 0, true],
      ],
      items: [['i1', 7, false]],
    };
    expect(rows(outbox)).toEqual(expected);
    outbox.close();

    const reopened = open();
    expect(rows(reopened)).toEqual(expected);
    reopened.close();
  });

  it('writes nothing when no row is unanchored and no reservation is left', async () => {
    const outbox = open();
    await Promise.all([outbox.append(pendingValue('a', 5)), outbox.append(pendingItem('log', 'i1', 7))]);
    const commits = logCommits();
    const appends = outbox.commits;
    expect(commits).toBeGreaterThan(0);
    const bytes = files();

    outbox.anchor([], 7);
    expect(logCommits()).toBe(commits);
    expect(outbox.commits).toBe(appends);
    expect(files()).toEqual(bytes);
    expect(rows(outbox)).toEqual({ values: [['a', 5, 0, false]], items: [['i1', 7, false]] });

    // The same call with one unanchored row to mark is seen in the log: the count above can move.
    await outbox.append(unanchored(pendingValue('b', 8)));
    const afterAppend = logCommits();
    expect(afterAppend).toBe(commits + 1);
    outbox.anchor([], 8);
    expect(logCommits()).toBe(afterAppend + 1);
    expect(outbox.pending().find((p) => p.key === 'b')?.unanchored).toBeUndefined();
    outbox.close();
  });

  it('still drops reservations the previous release left, and then writes nothing more', async () => {
    const first = open();
    await first.append(pendingValue('a', 5));
    first.close();
    reserve([[5, 9]]);

    const outbox = open();
    const before = logCommits();
    outbox.anchor([], 5);
    expect(logCommits()).toBe(before + 1);
    expect(outbox.reservedVersions()).toEqual([]);
    const bytes = files();
    outbox.anchor([], 5);
    expect(files()).toEqual(bytes);
    outbox.close();
  });
});
