import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { StorageConfigurationError } from '../../../../src/storage/contract/errors.js';
import { SqliteStorage } from '../../../../src/storage/sqlite/sqlite-storage.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';

/** The error Node gives for an addon it cannot load (built for another ABI, platform or libc). */
function realDlopenError(): Error {
  const file = join(tmpdir(), `not-an-addon-${process.pid}.node`);
  writeFileSync(file, 'not a shared object');
  try {
    process.dlopen({ exports: {} }, file);
  } catch (error) {
    return error as Error;
  }
  throw new Error('dlopen of a text file succeeded');
}

vi.mock('better-sqlite3', async (importActual) => {
  const actual = (await importActual()) as { default: object };
  const Database = Object.assign(
    function Database() {
      throw realDlopenError();
    },
    { SqliteError: (actual.default as { SqliteError: unknown }).SqliteError },
  );
  return { default: Database };
});

describe('a SQLite native module this Node cannot load', () => {
  it('is reported by SqliteStorage as such, with what to do, not as a problem with the file', async () => {
    const open = () => new SqliteStorage({ path: join(tmpdir(), 'never-created', 'store.db') });
    expect(open).toThrow(StorageConfigurationError);
    expect(open).toThrow(
      /the SQLite native module \(better-sqlite3\) cannot be loaded by Node\.js v[\d.]+ \(linux-x64\): .*Reinstall dependencies with the Node\.js that runs this process/,
    );
    expect(open).not.toThrow(/permissions/);
  });

  it('is reported by the outbox as such, not as a problem with the outbox file', async () => {
    const open = () =>
      SqliteOutbox.open({ path: join(tmpdir(), 'never-created', 'outbox.db'), durability: 'process' });
    expect(open).toThrow(OutboxError);
    expect(open).toThrow(
      /^cannot open the outbox at .*: the SQLite native module \(better-sqlite3\) cannot be loaded by Node\.js v[\d.]+/,
    );
  });
});
