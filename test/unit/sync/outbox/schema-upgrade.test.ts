import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError, SqliteStorage } from '../../../../src/index.js';
import { APPLICATION_IDS } from '../../../../src/storage/sqlite-file/sqlite-file.js';
import {
  assertOutboxFile,
  inspectHeldFile,
  isBusy,
  OUTBOX_SCHEMA_VERSION,
} from '../../../../src/sync/outbox/outbox-schema.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { firstReleaseOutbox } from '../../../helpers/outbox.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-schema-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const OWN_FILE = 'give the outbox a file of its own (outbox.path / CACHE_DATA_DIR)';

describe('an outbox file of an earlier schema is upgraded in place', () => {
  it('schema 1 without an application id: its rows replay, and it is stamped at the current schema', () => {
    const path = join(dir, 'outbox.db');
    firstReleaseOutbox(path, { deadLetter: true });
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    expect(outbox.pending()).toEqual([
      { key: 'a', version: 50, json: '{"n":1}', expiresAt: null, queuedAt: 7 },
      { key: 'b', version: 51, json: null, expiresAt: null, queuedAt: 8 },
    ]);
    expect(outbox.pendingItems()).toEqual([]);
    expect(outbox.highestVersion()).toBe(51);
    expect(outbox.deadLetters()).toEqual([
      { key: 'p', version: 30, json: '"poison"', expiresAt: null, error: 'check failed', failedAt: 9 },
    ]);
    outbox.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(OUTBOX_SCHEMA_VERSION);
    expect(check.pragma('application_id', { simple: true })).toBe(APPLICATION_IDS.outbox);
    expect(
      check.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all(),
    ).toEqual(['dead_letters', 'meta', 'pending', 'pending_items', 'reserved_versions']);
    check.close();
  });

  it('after the upgrade it takes appended items and dead letters of items, and keeps them across a reopen', async () => {
    const path = join(dir, 'outbox.db');
    firstReleaseOutbox(path, { deadLetter: true });
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    await outbox.append({
      key: 'log',
      item: { id: 'i1', version: 60, json: '"line"' },
      expiresAt: null,
      queuedAt: 10,
    });
    outbox.deadLetter({
      key: 'x',
      version: 61,
      json: '1',
      expiresAt: null,
      itemId: 'i9',
      error: 'refused',
      failedAt: 11,
    });
    outbox.close();
    const reopened = SqliteOutbox.open({ path, durability: 'process' });
    expect(reopened.pendingItems().map((p) => p.item)).toEqual([{ id: 'i1', version: 60, json: '"line"' }]);
    expect(reopened.deadLetters().map((l) => l.itemId)).toEqual([undefined, 'i9']);
    reopened.close();
  });

  it('an unstamped file with the first release’s tables but another schema version is not taken for an outbox', () => {
    const path = join(dir, 'outbox.db');
    firstReleaseOutbox(path, { deadLetter: true });
    const raw = new Database(path);
    raw.pragma('user_version = 0');
    raw.close();
    const before = readFileSync(path);
    expect(() => SqliteOutbox.open({ path, durability: 'process' })).toThrow(
      `${path} is another application's database (tables dead_letters, meta, pending), not a hybrid-cache outbox; it was left untouched: ${OWN_FILE}`,
    );
    expect(readFileSync(path)).toEqual(before);
  });
});

describe('assertOutboxFile', () => {
  const refusal = (path: string): string => {
    const db = new Database(path);
    try {
      assertOutboxFile(db, path);
      return 'accepted';
    } catch (error) {
      expect(error).toBeInstanceOf(OutboxError);
      return (error as Error).message;
    } finally {
      db.close();
    }
  };

  it('accepts an empty file and an outbox', () => {
    expect(refusal(join(dir, 'new.db'))).toBe('accepted');
    const path = join(dir, 'outbox.db');
    SqliteOutbox.open({ path, durability: 'process' }).close();
    expect(refusal(path)).toBe('accepted');
  });

  it('refuses the store file, saying what it is and what to do', async () => {
    const path = join(dir, 'store.db');
    await new SqliteStorage({ path }).close();
    expect(refusal(path)).toBe(
      `${path} is a hybrid-cache store file, not an outbox; it was left untouched: ${OWN_FILE}`,
    );
  });

  it('refuses another application’s database by its application id, or by its tables when it has none', () => {
    const stamped = join(dir, 'stamped.db');
    const a = new Database(stamped);
    a.pragma('application_id = 1234');
    a.close();
    expect(refusal(stamped)).toBe(
      `${stamped} is another application's database (application_id 1234), not a hybrid-cache outbox; it was left untouched: ${OWN_FILE}`,
    );
    const tables = join(dir, 'tables.db');
    const b = new Database(tables);
    b.exec('CREATE TABLE notes (body TEXT); CREATE TABLE authors (name TEXT)');
    b.close();
    expect(refusal(tables)).toBe(
      `${tables} is another application's database (tables authors, notes), not a hybrid-cache outbox; it was left untouched: ${OWN_FILE}`,
    );
  });

  it('refuses an outbox of a newer schema', () => {
    const path = join(dir, 'outbox.db');
    SqliteOutbox.open({ path, durability: 'process' }).close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${OUTBOX_SCHEMA_VERSION + 1}`);
    raw.close();
    expect(refusal(path)).toBe(
      `the outbox at ${path} has schema version ${OUTBOX_SCHEMA_VERSION + 1}, newer than this version of hybrid-cache understands (${OUTBOX_SCHEMA_VERSION}); upgrade hybrid-cache or use another file`,
    );
  });
});

/** Descriptors this process holds on `path` (Linux). */
const openDescriptorsOf = (path: string): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;

describe('inspectHeldFile', () => {
  it('throws the refusal when the file held is not an outbox', async () => {
    const path = join(dir, 'store.db');
    const store = new SqliteStorage({ path });
    expect(() => inspectHeldFile(path)).toThrow(`${path} is a hybrid-cache store file, not an outbox`);
    await store.close();
    // SQLite keeps a closed connection's descriptor while another connection holds locks on the file.
    expect(openDescriptorsOf(path)).toBe(0);
  });

  it('says nothing about an outbox, and lets the outbox be opened afterwards', () => {
    const path = join(dir, 'outbox.db');
    SqliteOutbox.open({ path, durability: 'process' }).close();
    expect(() => inspectHeldFile(path)).not.toThrow();
    expect(openDescriptorsOf(path)).toBe(0);
    const outbox = SqliteOutbox.open({ path, durability: 'process' });
    expect(outbox.pending()).toEqual([]);
    outbox.close();
  });

  it('says nothing about a missing file, and does not create it', () => {
    const path = join(dir, 'missing.db');
    expect(() => inspectHeldFile(path)).not.toThrow();
    expect(existsSync(path)).toBe(false);
  });
});

describe('isBusy', () => {
  it('is true for a lock held elsewhere, in all its variants', () => {
    for (const code of [
      'SQLITE_BUSY',
      'SQLITE_BUSY_SNAPSHOT',
      'SQLITE_LOCKED',
      'SQLITE_LOCKED_SHAREDCACHE',
    ]) {
      expect(isBusy(Object.assign(new Error('locked'), { code }))).toBe(true);
    }
  });

  it('is false for other errors and for values without a code', () => {
    expect(isBusy(Object.assign(new Error('full'), { code: 'SQLITE_FULL' }))).toBe(false);
    expect(isBusy(new Error('no code'))).toBe(false);
    expect(isBusy(undefined)).toBe(false);
    expect(isBusy(null)).toBe(false);
  });
});
