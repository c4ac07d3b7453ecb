import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { HealingOutbox } from '../../../../src/sync/outbox/healing-outbox.js';
import type { OutboxRows } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { pendingValue, turns } from '../../../helpers/outbox.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

let dir: string;
let path: string;
let environment: TestEnvironment;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-healing-outbox-'));
  path = join(dir, 'outbox.db');
  environment = new TestEnvironment();
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const open = () => HealingOutbox.open({ path, durability: 'process', environment });
const noRows = (): OutboxRows => ({ values: [], items: [], appended: [], highestVersion: 0 });
const removeFiles = () => {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
};

describe('HealingOutbox', () => {
  it('asks for a heal on the turn after the loss and on every tick until a reopen succeeds, then no more', async () => {
    const outbox = open();
    let asked = 0;
    outbox.onLost(() => asked++);
    removeFiles();
    environment.tick();
    expect(outbox.lost).toBe(true);
    expect(asked).toBe(0);
    await turns(1);
    expect(asked).toBe(1);
    environment.tick();
    expect(asked).toBe(2);

    await outbox.reopen(() => ({ ...noRows(), values: [pendingValue('a', 10)] }));
    expect(outbox.lost).toBe(false);
    expect(outbox.failure).toBeUndefined();
    environment.tick();
    await turns(1);
    expect(asked).toBe(2);
    await outbox.append(pendingValue('b', 11));
    expect(outbox.pending().map((row) => row.key)).toEqual(['a', 'b']);
    expect(outbox.highestVersion()).toBe(11);
    await outbox.close();
  });

  it('a reopen while its file is fine changes nothing and takes no rows', async () => {
    const outbox = open();
    await outbox.append(pendingValue('a', 10));
    let taken = 0;
    await outbox.reopen(() => {
      taken++;
      return noRows();
    });
    expect(taken).toBe(0);
    expect(outbox.pending().map((row) => row.key)).toEqual(['a']);
    await outbox.close();
  });

  it("the lost file's log left at the path is not applied to the file put there", async () => {
    const outbox = open();
    await outbox.append(pendingValue('ours', 10));
    const other = join(dir, 'backup.db');
    const backup = SqliteOutbox.open({ path: other, durability: 'process' });
    await backup.append(pendingValue('theirs', 5));
    await backup.close();
    // Only the main file is replaced: the log at the path is still the lost file's.
    renameSync(other, path);
    environment.tick();
    expect(outbox.lost).toBe(true);

    await outbox.reopen(noRows);
    expect(outbox.pending().map((row) => row.key)).toEqual(['theirs']);
    await outbox.close();
  });

  it('closed: no more heals asked for, and a reopen is refused', async () => {
    const outbox = open();
    let asked = 0;
    outbox.onLost(() => asked++);
    removeFiles();
    environment.tick();
    expect(outbox.lost).toBe(true);
    await outbox.close();
    await turns(1);
    environment.tick();
    expect(asked).toBe(0);
    await expect(outbox.reopen(noRows)).rejects.toBeInstanceOf(OutboxError);
  });
});
