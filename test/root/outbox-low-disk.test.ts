import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxError } from '../../src/index.js';
import { systemEnvironment } from '../../src/sync/outbox/environment.js';
import type { PendingWrite } from '../../src/sync/outbox/outbox.js';
import { SqliteOutbox } from '../../src/sync/outbox/sqlite-outbox.js';
import { capturingLogger } from '../helpers/cache.js';
import { fillDisk, freeBytesAt } from '../helpers/outbox.js';
import { countingEnvironment } from '../helpers/outbox-environment.js';

/**
 * The outbox on a real filesystem with under 32 MiB free (a small tmpfs), where every write first
 * checks that it leaves room to clear the backlog. Mounting a filesystem takes root, which CI has.
 */
const asRoot = it.runIf(process.getuid?.() === 0);

let dir: string;
let mountPoint: string;
let mounted: boolean;
let opened: SqliteOutbox[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-low-disk-'));
  mountPoint = join(dir, 'small-disk');
  mkdirSync(mountPoint);
  mounted = false;
  opened = [];
});
afterEach(async () => {
  for (const outbox of opened) await outbox.close();
  if (mounted) spawnSync('umount', ['--lazy', mountPoint]);
  rmSync(dir, { recursive: true, force: true });
});

/** Mounts a tmpfs of `mebibytes` and returns the outbox path on it. */
function smallDisk(mebibytes = 4): string {
  const status = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mebibytes}m`, 'tmpfs', mountPoint]).status;
  expect(status, 'mounting a tmpfs failed').toBe(0);
  mounted = true;
  return join(mountPoint, 'outbox.db');
}

function open(path: string, options: { maintenanceIntervalMs?: number; logger?: boolean } = {}) {
  const { logger, lines, at } = capturingLogger();
  const { environment, ticks, syncs } = countingEnvironment();
  const outbox = SqliteOutbox.open({
    path,
    durability: 'process',
    maintenanceIntervalMs: options.maintenanceIntervalMs ?? 60_000,
    environment,
    ...(options.logger === false ? {} : { logger }),
  });
  opened.push(outbox);
  /** Waits until `n` more maintenance ticks have run. */
  const moreTicks = async (n: number) => {
    const target = ticks() + n;
    await vi.waitFor(() => expect(ticks()).toBeGreaterThanOrEqual(target), { timeout: 5_000, interval: 2 });
  };
  return { outbox, lines, at, moreTicks, syncs };
}

const sizeOf = (p: string) => statSync(p, { throwIfNoEntry: false })?.size ?? 0;
const freeBytes = () => freeBytesAt(mountPoint);
const filler = () => join(mountPoint, 'filler');

/** Fills the disk with a filler file, then gives `bytes` of it back (0: no byte left). */
function leaveFree(bytes: number): void {
  fillDisk(filler());
  if (bytes > 0) truncateSync(filler(), Math.max(0, sizeOf(filler()) - bytes));
}

const kilobyte = (key: string, version: number): PendingWrite => ({
  key,
  version,
  json: JSON.stringify({ version, text: 'x'.repeat(1_000) }),
  expiresAt: null,
  queuedAt: version,
});
const NEARLY_FULL =
  /^the outbox at .*outbox\.db could not record the write: the disk is nearly full \(\d+ bytes free\); the rest is kept for clearing the backlog\. It recovers once space is freed or the store acknowledges the backlog$/;

describe('outbox on a nearly full disk (tmpfs, root only)', () => {
  asRoot(
    'refuses a write that would eat the room kept for deleting pending rows (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const { outbox } = open(path);
      await outbox.append(kilobyte('kept', 1));
      leaveFree(64 * 1024);

      const refused = await outbox.append(kilobyte('refused', 2)).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(OutboxError);
      expect((refused as Error).message).toMatch(NEARLY_FULL);
      expect(outbox.failure).toBe(refused);
      expect(outbox.pending().map((p) => p.key)).toEqual(['kept']);
      expect(outbox.highestVersion()).toBe(1);
    },
  );

  asRoot(
    'accepts the same write on the same free space when nothing is pending (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const { outbox } = open(path);
      leaveFree(64 * 1024);

      await outbox.append(kilobyte('accepted', 1));
      expect(outbox.failure).toBeUndefined();
      // It fitted beside the log: nothing had to be folded back first.
      expect(outbox.checkpoints).toBe(0);
      expect(outbox.pending().map((p) => p.key)).toEqual(['accepted']);
    },
  );

  asRoot(
    'rows already in the file need no room to be folded back: a write that fits beside them is accepted (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const first = open(path);
      await Promise.all(Array.from({ length: 120 }, (_, i) => first.outbox.append(kilobyte(`k${i}`, i + 1))));
      await first.outbox.close();
      // Reopened: the rows are in the file itself, which is far larger than the room left.
      expect(sizeOf(path)).toBeGreaterThan(400 * 1024);
      const { outbox } = open(path);
      leaveFree(200 * 1024);

      await outbox.append(kilobyte('accepted', 121));
      expect(outbox.failure).toBeUndefined();
      expect(outbox.checkpoints).toBe(0);
      expect(outbox.pending()).toHaveLength(121);
    },
  );
});

describe('making room on a nearly full disk (tmpfs, root only)', () => {
  asRoot(
    'folds the log back into the file (emptying it) when that frees the room a write needs (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const { outbox } = open(path);
      // One commit each: the log holds several copies of the pages, far more than the file would grow.
      for (let v = 1; v <= 15; v++) await outbox.append(kilobyte(`k${v}`, v));
      expect(sizeOf(`${path}-wal`)).toBeGreaterThan(200 * 1024);
      expect(outbox.checkpoints).toBe(0);
      // Room for the write and for deleting rows later, but not for folding the log back as well.
      leaveFree(160 * 1024);

      await outbox.append(kilobyte('after', 16));
      expect(outbox.failure).toBeUndefined();
      expect(outbox.checkpoints).toBeGreaterThan(0);
      // The log was emptied, and holds only the new write.
      expect(sizeOf(`${path}-wal`)).toBeLessThan(64 * 1024);
      expect(outbox.pending()).toHaveLength(16);
    },
  );

  asRoot(
    'after a crash, the first write folds back the log the earlier process left when that makes room (tmpfs, root only)',
    async () => {
      // What a process killed before any checkpoint leaves: the rows only in its log.
      const source = join(dir, 'source.db');
      const crashed = open(source);
      for (let v = 1; v <= 60; v++) await crashed.outbox.append(kilobyte(`k${v}`, v));
      const path = smallDisk();
      copyFileSync(source, path);
      copyFileSync(`${source}-wal`, `${path}-wal`);
      await crashed.outbox.close();
      expect(sizeOf(`${path}-wal`)).toBeGreaterThan(800 * 1024);
      leaveFree(400 * 1024);

      const { outbox } = open(path);
      await outbox.append(kilobyte('after', 61));
      expect(outbox.failure).toBeUndefined();
      expect(outbox.checkpoints).toBeGreaterThan(0);
      expect(outbox.pending()).toHaveLength(61);
    },
  );

  asRoot('takes writes again once the backlog is acknowledged and deleted (tmpfs, root only)', async () => {
    const path = smallDisk();
    const { outbox, at, moreTicks } = open(path, { maintenanceIntervalMs: 10 });
    await outbox.append(kilobyte('kept', 1));
    leaveFree(64 * 1024);
    await expect(outbox.append(kilobyte('refused', 2))).rejects.toThrow(NEARLY_FULL);

    // The probe keeps refusing while the row is pending: the room left is kept for deleting it.
    await moreTicks(5);
    expect(outbox.failure?.message).toMatch(NEARLY_FULL);
    expect(at('info')).toEqual([]);

    outbox.acknowledge([{ key: 'kept', version: 1 }]);
    await vi.waitFor(() => expect(outbox.failure).toBeUndefined(), { timeout: 5_000, interval: 5 });
    expect(at('info').map(({ msg, path: p }) => ({ msg, path: p }))).toContainEqual({
      msg: 'the outbox accepts writes again',
      path,
    });
    await outbox.append(kilobyte('after', 3));
    expect(outbox.pending().map((p) => p.key)).toEqual(['after']);
  });
});

describe('background maintenance on a full disk (tmpfs, root only)', () => {
  asRoot(
    'acknowledged rows that cannot be deleted warn once, are retried, and are deleted once space is freed (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const writes = Array.from({ length: 20 }, (_, i) => kilobyte(`k${i}`, i + 1));
      const first = open(path);
      await Promise.all(writes.map((w) => first.outbox.append(w)));
      await first.outbox.close();

      const { outbox, at } = open(path, { maintenanceIntervalMs: 10 });
      leaveFree(0);
      outbox.acknowledge(writes.map(({ key, version }) => ({ key, version })));
      await vi.waitFor(() => expect(at('warn')).toHaveLength(1), { timeout: 5_000, interval: 5 });
      const [warning] = at('warn');
      expect(warning).toMatchObject({
        msg: 'outbox maintenance failed (checkpoint or clearing acknowledged writes); retrying in the background',
        path,
        unacknowledged: 20,
      });
      expect(warning?.err).toBeDefined();

      // Retried in the background (each tick checkpoints first), still failing: no new line.
      const checkpoints = outbox.checkpoints;
      await vi.waitFor(() => expect(outbox.checkpoints).toBeGreaterThan(checkpoints + 2), {
        timeout: 5_000,
        interval: 5,
      });
      expect(outbox.pending()).toHaveLength(20);
      expect(at('warn')).toHaveLength(1);
      expect(at('info')).toEqual([]);

      rmSync(filler());
      await vi.waitFor(() => expect(at('info')).toHaveLength(1), { timeout: 5_000, interval: 5 });
      expect(at('info')[0]).toMatchObject({ msg: 'outbox maintenance succeeds again', path });
      expect(outbox.pending()).toEqual([]);
      expect(at('warn')).toHaveLength(1);
      await outbox.close();

      expect(open(path).outbox.pending()).toEqual([]);
    },
  );

  asRoot(
    'a checkpoint that fails on a full disk warns once, is retried, and succeeds once space is freed (tmpfs, root only)',
    async () => {
      // Rows written elsewhere and copied over with their log, never checkpointed: folding the log
      // back needs the main file to grow, which a full disk refuses.
      const source = join(dir, 'source.db');
      const writer = open(source);
      for (let v = 1; v <= 60; v++) await writer.outbox.append(kilobyte(`k${v}`, v));
      const path = smallDisk();
      copyFileSync(source, path);
      copyFileSync(`${source}-wal`, `${path}-wal`);
      await writer.outbox.close();
      leaveFree(0);

      const { outbox, at, moreTicks } = open(path, { maintenanceIntervalMs: 10 });
      expect(outbox.pending()).toHaveLength(60);
      await expect(outbox.append(kilobyte('refused', 61))).rejects.toThrow(NEARLY_FULL);
      await vi.waitFor(() => expect(at('warn')).toHaveLength(1), { timeout: 5_000, interval: 5 });
      expect(at('warn')[0]).toMatchObject({
        msg: 'outbox maintenance failed (checkpoint or clearing acknowledged writes); retrying in the background',
        path,
        unacknowledged: 0,
      });
      await moreTicks(5);
      expect(at('warn')).toHaveLength(1);
      expect(outbox.checkpoints).toBe(0);

      rmSync(filler());
      await vi.waitFor(
        () =>
          expect(at('info').map((l) => l.msg)).toEqual(
            expect.arrayContaining(['the outbox accepts writes again', 'outbox maintenance succeeds again']),
          ),
        { timeout: 5_000, interval: 5 },
      );
      expect(at('info').find((l) => l.msg === 'outbox maintenance succeeds again')).toMatchObject({ path });
      expect(outbox.checkpoints).toBeGreaterThan(0);
      await outbox.append(kilobyte('accepted', 62));
      expect(outbox.pending()).toHaveLength(61);
      expect(at('warn')).toHaveLength(1);

      // Having recovered, the next failure is reported again.
      await Promise.all(Array.from({ length: 60 }, (_, i) => outbox.append(kilobyte(`more-${i}`, 63 + i))));
      leaveFree(0);
      await vi.waitFor(() => expect(at('warn')).toHaveLength(2), { timeout: 5_000, interval: 5 });
    },
  );
});

describe('prompt recovery once the backlog is acknowledged (tmpfs, root only)', () => {
  asRoot(
    'with no maintenance tick at all: deletions that fill the reused log are resumed after a checkpoint, and writes are taken once they are done (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const { logger, at } = capturingLogger();
      // The real machine without the timer: nothing below can come from a background tick.
      const outbox = SqliteOutbox.open({
        path,
        durability: 'process',
        logger,
        environment: { ...systemEnvironment, every: () => () => undefined },
      });
      opened.push(outbox);
      const accepted: PendingWrite[] = [];
      for (let v = 1; v <= 20_000; v++) {
        const write = kilobyte(`k${v}`, v);
        const refused = await outbox.append(write).then(
          () => false,
          () => true,
        );
        if (refused) break;
        accepted.push(write);
      }
      expect(accepted.length).toBeGreaterThan(500);
      expect(outbox.failure?.message).toMatch(NEARLY_FULL);

      outbox.acknowledge(accepted.map(({ key, version }) => ({ key, version })));
      await vi.waitFor(() => expect(outbox.failure).toBeUndefined(), { timeout: 10_000, interval: 5 });
      // Some deletions failed for lack of log room on the way, and were retried without a tick.
      expect(at('warn').map((l) => l.msg)).toContain(
        'outbox maintenance failed (checkpoint or clearing acknowledged writes); retrying in the background',
      );
      expect(at('info').map((l) => l.msg)).toContain('the outbox accepts writes again');
      await outbox.append(kilobyte('after', 30_000));
      expect(outbox.pending().map((p) => p.key)).toEqual(['after']);
    },
  );
});

describe('without a logger (tmpfs, root only)', () => {
  asRoot(
    'failed deletions and refused writes on a full disk still recover once space is freed (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const writes = Array.from({ length: 20 }, (_, i) => kilobyte(`k${i}`, i + 1));
      const first = open(path, { logger: false });
      await Promise.all(writes.map((w) => first.outbox.append(w)));
      await first.outbox.close();

      const { outbox, moreTicks } = open(path, { maintenanceIntervalMs: 10, logger: false });
      leaveFree(0);
      await expect(outbox.append(kilobyte('refused', 21))).rejects.toThrow(NEARLY_FULL);
      outbox.acknowledge(writes.map(({ key, version }) => ({ key, version })));
      // Replaying retries the deletions at once; on a full disk they fail and the rows are kept.
      expect(outbox.pending()).toHaveLength(20);
      await moreTicks(3);
      expect(outbox.pending()).toHaveLength(20);

      rmSync(filler());
      expect(outbox.pending()).toEqual([]);
      await vi.waitFor(() => expect(outbox.failure).toBeUndefined(), { timeout: 5_000, interval: 5 });
      await outbox.append(kilobyte('accepted', 22));
      expect(outbox.pending().map((p) => p.key)).toEqual(['accepted']);
    },
  );
});

describe('the checkpoint threshold on a small disk (tmpfs, root only)', () => {
  asRoot(
    'the log grows to about a quarter of the free space before a checkpoint, then is reused (tmpfs, root only)',
    async () => {
      const path = smallDisk();
      const { outbox, syncs } = open(path);
      let v = 0;
      while (sizeOf(`${path}-wal`) < 512 * 1024) await outbox.append(kilobyte(`k${v % 500}`, ++v));
      // A quarter of ~4 MiB free is far above this: not yet.
      expect(outbox.checkpoints).toBe(0);
      while (outbox.checkpoints === 0 && sizeOf(`${path}-wal`) < 1_400 * 1024) {
        await outbox.append(kilobyte(`k${v % 500}`, ++v));
      }
      await vi.waitFor(() => expect(outbox.checkpoints).toBe(1), { timeout: 5_000, interval: 5 });
      expect(syncs()).toBe(1);
      expect(sizeOf(`${path}-wal`)).toBeGreaterThan(512 * 1024);

      // Later writes reuse the checkpointed log from its start: no new checkpoint until it outgrows it.
      const commits = outbox.commits;
      for (let i = 0; i < 20; i++) await outbox.append(kilobyte(`k${v % 500}`, ++v));
      expect(outbox.commits).toBe(commits + 20);
      expect(syncs()).toBe(1);
      expect(outbox.checkpoints).toBe(1);
      expect(freeBytes()).toBeGreaterThan(1024 * 1024);
    },
  );
});
