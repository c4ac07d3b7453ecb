import {
  mkdtempSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OutboxError } from '../../../../src/index.js';
import { OutboxFiles } from '../../../../src/sync/outbox/outbox-files.js';

let dir: string;
let path: string;
let opened: OutboxFiles[];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-outbox-files-'));
  path = join(dir, 'outbox.db');
  opened = [];
});
afterEach(() => {
  for (const files of opened) files.close();
  rmSync(dir, { recursive: true, force: true });
});

const replacedMessage = (p: string) =>
  `the outbox at ${p} (or its -wal file) was deleted or replaced while the cache was running; ` +
  'this file cannot keep new writes. The cache writes a new outbox at that path from memory; until it ' +
  'has, writes are refused, and writes accepted before keep flushing to the store from memory';

/** Creates the outbox file and its log with these sizes, and watches them. */
function watched(mainBytes = 4096, walBytes = 100): OutboxFiles {
  writeFileSync(path, Buffer.alloc(mainBytes));
  writeFileSync(`${path}-wal`, Buffer.alloc(walBytes));
  const files = OutboxFiles.watch(path);
  opened.push(files);
  return files;
}

/** Closes `files` in the test itself (so that afterEach does not close it twice). */
function closeNow(files: OutboxFiles): void {
  opened = opened.filter((f) => f !== files);
  files.close();
}

const descriptorsOn = (p: string): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === p;
    } catch {
      return false;
    }
  }).length;

const thrown = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
};

describe('OutboxFiles.watch', () => {
  it('refuses when the file or its log is missing', () => {
    for (const setUp of [() => {}, () => writeFileSync(path, ''), () => writeFileSync(`${path}-wal`, '')]) {
      rmSync(path, { force: true });
      rmSync(`${path}-wal`, { force: true });
      setUp();
      const error = thrown(() => OutboxFiles.watch(path));
      expect(error).toBeInstanceOf(OutboxError);
      expect((error as Error).message).toBe(`the outbox at ${path} disappeared while it was being opened`);
      expect(descriptorsOn(path) + descriptorsOn(`${path}-wal`)).toBe(0);
    }
  });

  it('holds one descriptor on each file until closed', () => {
    const files = watched();
    expect(descriptorsOn(path)).toBe(1);
    expect(descriptorsOn(`${path}-wal`)).toBe(1);
    expect(files.walFd).toBeGreaterThan(2);
    closeNow(files);
    expect(descriptorsOn(path)).toBe(0);
    expect(descriptorsOn(`${path}-wal`)).toBe(0);
  });

  it('when the log is there but cannot be opened, throws why and leaves no descriptor on the file', async () => {
    writeFileSync(path, Buffer.alloc(4096));
    // A socket at the log's path: it exists, yet opening it fails (ENXIO).
    const socket = createServer();
    await new Promise<void>((resolve) => socket.listen(`${path}-wal`, resolve));
    try {
      const error = thrown(() => OutboxFiles.watch(path));
      expect(error).toBeInstanceOf(Error);
      expect((error as { code?: string }).code).toBe('ENXIO');
      expect(descriptorsOn(path)).toBe(0);
    } finally {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
  });
});

describe('OutboxFiles.check', () => {
  it('gives the sizes of the file and its log, as they change', () => {
    const files = watched(8192, 32);
    expect(files.check()).toEqual({ mainBytes: 8192, walBytes: 32 });
    writeFileSync(`${path}-wal`, Buffer.alloc(5000));
    expect(files.check()).toEqual({ mainBytes: 8192, walBytes: 5000 });
  });

  it('throws when the file is deleted', () => {
    const files = watched();
    unlinkSync(path);
    const error = thrown(() => files.check());
    expect(error).toBeInstanceOf(OutboxError);
    expect((error as Error).message).toBe(replacedMessage(path));
  });

  it('throws when the log alone is deleted', () => {
    const files = watched();
    unlinkSync(`${path}-wal`);
    expect(() => files.check()).toThrow(replacedMessage(path));
  });

  it('throws when another file is renamed over the outbox', () => {
    const files = watched();
    writeFileSync(join(dir, 'other.db'), 'x');
    renameSync(join(dir, 'other.db'), path);
    expect(() => files.check()).toThrow(OutboxError);
  });
});

describe('OutboxFiles.checkMain', () => {
  it('passes while the file is in place, throws once it is deleted', () => {
    const files = watched();
    expect(() => files.checkMain()).not.toThrow();
    unlinkSync(path);
    expect(() => files.checkMain()).toThrow(replacedMessage(path));
  });

  it('looks at the main file only', () => {
    const files = watched();
    unlinkSync(`${path}-wal`);
    expect(() => files.checkMain()).not.toThrow();
  });
});

describe('OutboxFiles.checkPaths', () => {
  it('gives the sizes while the files at the paths are the ones opened', () => {
    const files = watched(4096, 64);
    expect(files.checkPaths()).toEqual({ mainBytes: 4096, walBytes: 64 });
  });

  it('throws when the file was renamed away and a new one put at its path', () => {
    const files = watched();
    renameSync(path, join(dir, 'aside.db'));
    writeFileSync(path, Buffer.alloc(4096));
    // The file opened still has its link: only the paths tell.
    expect(() => files.check()).not.toThrow();
    expect(() => files.checkPaths()).toThrow(replacedMessage(path));
  });

  it('throws when the log was renamed away and a new one put at its path', () => {
    const files = watched();
    renameSync(`${path}-wal`, join(dir, 'aside.db-wal'));
    writeFileSync(`${path}-wal`, Buffer.alloc(100));
    expect(() => files.check()).not.toThrow();
    expect(() => files.checkPaths()).toThrow(replacedMessage(path));
  });

  it('throws when the file was deleted', () => {
    const files = watched();
    unlinkSync(path);
    expect(() => files.checkPaths()).toThrow(OutboxError);
  });
});
