import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import type { PendingWrite } from '../../../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger } from '../../../helpers/cache.js';
import { turns } from '../../../helpers/outbox.js';
import { TestEnvironment } from '../../../helpers/outbox-environment.js';

/**
 * The log's space with free disk, the log's size and the maintenance tick injected: what the
 * nearly-full-disk tests on a small tmpfs (test/root) show, here without root and without timers.
 */

let dir: string;
let path: string;
let env: TestEnvironment;
let opened: SqliteOutbox[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-space-'));
  path = join(dir, 'outbox.db');
  env = new TestEnvironment();
  opened = [];
});
afterEach(async () => {
  for (const outbox of opened) await outbox.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(durability: 'process' | 'fsync' = 'process') {
  const { logger, at } = capturingLogger();
  const outbox = SqliteOutbox.open({ path, durability, logger, environment: env });
  opened.push(outbox);
  return { outbox, at };
}

const KiB = 1024;
const MiB = 2 ** 20;
const sizeOf = (p: string) => statSync(p, { throwIfNoEntry: false })?.size ?? 0;
const kilobyte = (key: string, version: number): PendingWrite => ({
  key,
  version,
  json: JSON.stringify({ version, text: 'x'.repeat(1_000) }),
  expiresAt: null,
  queuedAt: version,
});
const NEARLY_FULL =
  /^the outbox at .*outbox\.db could not record the write: the disk is nearly full \(\d+ bytes free\); the rest is kept for clearing the backlog\. It recovers once space is freed or the store acknowledges the backlog$/;
const refusal = (written: Promise<void>) =>
  written.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('low-disk admission (free space injected)', () => {
  it('refuses a write that would eat the room kept for deleting pending rows', async () => {
    env.free = 64 * KiB;
    const { outbox } = open();
    await outbox.append(kilobyte('kept', 1));

    const refused = await refusal(outbox.append(kilobyte('refused', 2)));
    expect(refused).toBeInstanceOf(OutboxError);
    expect((refused as Error).message).toMatch(NEARLY_FULL);
    expect((refused as Error).message).toContain(`(${64 * KiB} bytes free)`);
    expect(outbox.failure).toBe(refused);
    expect(outbox.pending().map((p) => p.key)).toEqual(['kept']);
    expect(outbox.highestVersion()).toBe(1);
  });

  it('accepts the same write on the same free space when nothing is pending, without a checkpoint', async () => {
    env.free = 64 * KiB;
    const { outbox } = open();
    await outbox.append(kilobyte('accepted', 1));
    expect(outbox.failure).toBeUndefined();
    expect(outbox.checkpoints).toBe(0);
    expect(outbox.pending().map((p) => p.key)).toEqual(['accepted']);
  });

  it('accepts it with a backlog pending when the disk has room: admission is checked only on a nearly full disk', async () => {
    env.free = 33 * MiB;
    const { outbox } = open();
    await outbox.append(kilobyte('kept', 1));
    await outbox.append(kilobyte('accepted', 2));
    expect(outbox.failure).toBeUndefined();
    expect(outbox.pending().map((p) => p.key)).toEqual(['kept', 'accepted']);
  });
});

describe('recovery once room returns (no timer)', () => {
  it('takes writes again as soon as the acknowledged backlog is deleted, without waiting for a tick', async () => {
    env.free = 64 * KiB;
    const { outbox, at } = open();
    await outbox.append(kilobyte('kept', 1));
    await expect(outbox.append(kilobyte('refused', 2))).rejects.toThrow(NEARLY_FULL);

    // A tick while the row is pending: it measures the disk and checkpoints what was written, and
    // the outbox keeps refusing: the room left is kept for deleting that row.
    const measured = env.measurements;
    env.tick();
    expect(env.measurements).toBeGreaterThan(measured);
    expect(env.syncs).toBe(1);
    expect(outbox.failure?.message).toMatch(NEARLY_FULL);
    expect(at('info')).toEqual([]);

    outbox.acknowledge([{ key: 'kept', version: 1 }]);
    await turns(3);
    expect(outbox.failure).toBeUndefined();
    expect(env.ticks).toBe(1);
    expect(at('info').map(({ msg, path: p }) => ({ msg, path: p }))).toContainEqual({
      msg: 'the outbox accepts writes again',
      path,
    });
    await outbox.append(kilobyte('after', 3));
    expect(outbox.pending().map((p) => p.key)).toEqual(['after']);
  });

  it('takes writes again on the next tick once space is freed, with the backlog still pending', async () => {
    env.free = 64 * KiB;
    const { outbox, at } = open();
    await outbox.append(kilobyte('kept', 1));
    await expect(outbox.append(kilobyte('refused', 2))).rejects.toThrow(NEARLY_FULL);

    env.free = 40 * MiB;
    env.tick();
    expect(outbox.failure).toBeUndefined();
    expect(at('info').map((l) => l.msg)).toContain('the outbox accepts writes again');
    await outbox.append(kilobyte('accepted', 2));
    expect(outbox.pending().map((p) => p.key)).toEqual(['kept', 'accepted']);
  });

  it('keeps refusing on every tick while nothing changes', async () => {
    env.free = 64 * KiB;
    const { outbox, at } = open();
    await outbox.append(kilobyte('kept', 1));
    const refused = await refusal(outbox.append(kilobyte('refused', 2)));
    for (let i = 0; i < 3; i++) {
      const measured = env.measurements;
      env.tick();
      expect(env.measurements).toBeGreaterThan(measured);
      expect(outbox.failure).toBe(refused);
    }
    expect(at('info')).toEqual([]);
  });
});

describe('the checkpoint threshold follows free space (free space and log size injected)', () => {
  it('a quarter of the free space on a small disk; the configured 16 MiB once the disk has room again', async () => {
    env.free = 1 * MiB;
    const { outbox } = open();
    env.walBytes = 255 * KiB;
    await outbox.append(kilobyte('a', 1));
    expect(outbox.commits).toBe(1);
    expect(env.syncs).toBe(0);

    env.walBytes = 256 * KiB;
    await outbox.append(kilobyte('b', 2));
    // Asked for in the background: the log is synced on the thread pool first, then checkpointed.
    expect(env.syncs).toBe(1);
    expect(outbox.checkpoints).toBe(0);
    await turns(2);
    expect(outbox.checkpoints).toBe(1);

    env.free = 64 * MiB;
    env.tick(); // measures the disk again (and checkpoints what was written)
    await turns(2);
    expect(outbox.checkpoints).toBe(2);
    env.walBytes = 16 * MiB - 1;
    await outbox.append(kilobyte('c', 3));
    expect(outbox.commits).toBe(3);
    expect(env.syncs).toBe(2);
    env.walBytes = 16 * MiB;
    await outbox.append(kilobyte('d', 4));
    expect(env.syncs).toBe(3);
  });

  it('a log reused from its start after a checkpoint is not checkpointed again until it outgrows its size then', async () => {
    env.free = 1 * MiB;
    const { outbox } = open();
    env.walBytes = 300 * KiB;
    await outbox.append(kilobyte('a', 1));
    await turns(2);
    expect(outbox.checkpoints).toBe(1);

    await outbox.append(kilobyte('b', 2));
    expect(outbox.commits).toBe(2);
    expect(env.syncs).toBe(1);
    env.walBytes = 300 * KiB + 4096;
    await outbox.append(kilobyte('c', 3));
    expect(env.syncs).toBe(2);
  });
});

describe('checkpoints only when the policy says so (tick injected)', () => {
  it('a tick checkpoints what was written; an idle tick with rows pending does nothing; once nothing is pending the log is emptied', async () => {
    const { outbox } = open();
    await outbox.append(kilobyte('a', 1));
    expect(outbox.checkpoints).toBe(0);

    env.tick();
    expect(env.syncs).toBe(1);
    await turns(2);
    expect(outbox.checkpoints).toBe(1);

    let measured = env.measurements;
    env.tick();
    expect(env.measurements).toBeGreaterThan(measured);
    expect(env.syncs).toBe(1);
    expect(outbox.checkpoints).toBe(1);
    expect(sizeOf(`${path}-wal`)).toBeGreaterThan(0);

    outbox.acknowledge([{ key: 'a', version: 1 }]);
    await turns(2);
    expect(outbox.pending()).toEqual([]);
    env.tick(); // the deletion was a write: checkpointed in the background
    await turns(2);
    expect(outbox.checkpoints).toBe(2);
    env.tick(); // idle with nothing pending: emptied at once
    expect(outbox.checkpoints).toBe(3);
    expect(sizeOf(`${path}-wal`)).toBe(0);

    measured = env.measurements;
    env.tick();
    expect(env.measurements).toBeGreaterThan(measured);
    expect(outbox.checkpoints).toBe(3);
    expect(env.syncs).toBe(2);
  });

  it('no free-space reading (statfs failing) keeps the last threshold and admits writes', async () => {
    env.free = undefined;
    const { outbox } = open();
    env.walBytes = 15 * MiB;
    await outbox.append(kilobyte('a', 1));
    await outbox.append(kilobyte('b', 2));
    expect(outbox.failure).toBeUndefined();
    expect(env.syncs).toBe(0);
    env.walBytes = 16 * MiB;
    await outbox.append(kilobyte('c', 3));
    expect(env.syncs).toBe(1);
  });
});
