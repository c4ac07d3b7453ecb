import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStorage } from '../../src/index.js';
import { fillDisk, freeBytesAt } from '../helpers/outbox.js';

const here = new URL('.', import.meta.url).pathname;
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function child(script: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', join(here, script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Last acknowledged state per key: the sequence number, and whether that write was a delete. */
type Acked = Map<string, { seq: number; deleted: boolean }>;

/** Runs the writer until it has acknowledged `killAfter` writes, then SIGKILLs it. */
async function runWriterAndKill(
  dir: string,
  killAfter: number,
  storeDown: boolean | 'writes',
  env: Record<string, string> = {},
): Promise<Acked> {
  const acked: Acked = new Map();
  const STORE_DOWN = storeDown === 'writes' ? 'writes' : storeDown ? '1' : '0';
  const writer = child('writer.ts', { CRASH_DIR: dir, STORE_DOWN, ...env });
  let buffer = '';
  let count = 0;
  let stderr = '';
  writer.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    writer.on('exit', (_code, signal) => resolve(signal)),
  );
  await new Promise<void>((resolve, reject) => {
    writer.on('exit', () => reject(new Error(`writer exited before the kill: ${stderr}`)));
    writer.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const [key, seq, deleted] = line.split(' ');
        if (!key || !seq) continue;
        const n = Number(seq);
        if ((acked.get(key)?.seq ?? -1) < n) acked.set(key, { seq: n, deleted: deleted === 'deleted' });
        if (++count === killAfter) {
          writer.kill('SIGKILL');
          resolve();
        }
      }
    });
  });
  expect(await exited).toBe('SIGKILL');
  return acked;
}

/**
 * `seen` must be the acknowledged write or a newer one. For `k*` keys (never deleted) that means a
 * value >= seq. For `d*` keys a newer, unacknowledged delete may also have landed, so absence is
 * accepted there; an acknowledged delete must read as absent or as a newer set.
 */
function expectAtLeast(key: string, seq: number, deleted: boolean, seen: number | null) {
  if (deleted) expect(seen === null || seen > seq, `${key}: deleted at ${seq}, read ${seen}`).toBe(true);
  else if (key.startsWith('d') && seen === null) return;
  else expect(seen, `${key}: acknowledged ${seq}`).toBeGreaterThanOrEqual(seq);
}

async function verify(dir: string, acked: Acked, env: Record<string, string> = {}) {
  const reader = child('reader.ts', {
    CRASH_DIR: dir,
    CRASH_READ_KEYS: JSON.stringify([...acked.keys()]),
    ...env,
  });
  let out = '';
  let err = '';
  reader.stdout?.on('data', (d) => {
    out += d;
  });
  reader.stderr?.on('data', (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((resolve) => reader.on('exit', resolve));
  expect(code, err).toBe(0);
  const result = JSON.parse(out) as {
    replayed: number;
    values: Record<string, number | null>;
    pending: number;
  };

  // Every acknowledged write is visible after restart: its own value, a newer one, or (for a
  // delete) absence or a newer write.
  for (const [key, { seq, deleted }] of acked) expectAtLeast(key, seq, deleted, result.values[key] ?? null);
  expect(result.pending).toBe(0);

  // After the flush, the store itself holds every acknowledged write (or a newer one).
  const store = new SqliteStorage({ path: join(dir, 'store.db') });
  const stored = await store.getMany([...acked.keys()]);
  for (const [key, { seq, deleted }] of acked) {
    const entry = stored.get(key);
    const storedSeq = entry?.json ? (JSON.parse(entry.json) as { seq: number }).seq : null;
    expectAtLeast(`${key} (store)`, seq, deleted, storedSeq);
  }
  await store.close();
  return result;
}

describe('crash safety with SIGKILL (durability: process)', () => {
  const runs = Number(process.env.CRASH_RUNS ?? 4);

  it.each(Array.from({ length: runs }, (_, i) => i))(
    'loses no acknowledged write when killed mid-stream (run %i)',
    async (run) => {
      const dir = mkdtempSync(join(tmpdir(), 'hc-crash-'));
      dirs.push(dir);
      // Kill at a different point each run; flushes run every 2 ms, so kills land mid-flush too.
      const killAfter = 50 + Math.floor(Math.random() * 3_000) + run * 200;
      const acked = await runWriterAndKill(dir, killAfter, false);
      expect(acked.size).toBeGreaterThan(0);
      await verify(dir, acked);
    },
    60_000,
  );

  it('delivers everything acknowledged while the store was down once it is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-crash-down-'));
    dirs.push(dir);
    const acked = await runWriterAndKill(dir, 1_500, true);
    const result = await verify(dir, acked);
    // Nothing reached the store before the crash, so the outbox held every acknowledged key.
    expect(result.replayed).toBeGreaterThanOrEqual(acked.size);
  }, 60_000);

  it('survives two crashes in a row with the store down, then drains', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-crash-twice-'));
    dirs.push(dir);
    const first = await runWriterAndKill(dir, 800, true);
    const second = await runWriterAndKill(dir, 800, true);
    // The second writer restarted its sequence, so merge by keeping each key's latest run.
    const merged: Acked = new Map(first);
    for (const [key, state] of second) merged.set(key, state);
    const result = await verify(dir, second);
    for (const key of first.keys()) {
      if (!second.has(key)) expect(result.values[key] ?? null, key).not.toBeUndefined();
    }
    expect(merged.size).toBeGreaterThanOrEqual(second.size);
  }, 60_000);
});

/** A fresh directory for the store, with a 4 MiB tmpfs inside it for the outbox; unmounted afterwards. */
async function withSmallOutboxDisk(run: (dir: string, env: Record<string, string>) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), 'hc-crash-full-'));
  dirs.push(dir);
  const disk = join(dir, 'small-disk');
  mkdirSync(disk);
  expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', disk]).status, 'mounting a tmpfs').toBe(
    0,
  );
  try {
    await run(dir, { CRASH_OUTBOX_DIR: disk });
  } finally {
    spawnSync('umount', ['--lazy', disk]);
  }
}

function fillOutboxDisk(env: Record<string, string>): void {
  const disk = env.CRASH_OUTBOX_DIR as string;
  fillDisk(join(disk, 'filler'));
  expect(freeBytesAt(disk)).toBeLessThan(4_096);
}

// Only a real filesystem can be filled to its last byte; mounting one takes root, which CI has.
describe.runIf(process.getuid?.() === 0)(
  'SIGKILL, then the outbox disk filled to its last byte (root only)',
  () => {
    it('a new process opens the outbox, replays it and delivers every acknowledged write', async () => {
      await withSmallOutboxDisk(async (dir, env) => {
        // The store answers its mark and refuses writes: everything acknowledged waits in the outbox.
        const acked = await runWriterAndKill(dir, 1_000, 'writes', env);
        fillOutboxDisk(env);
        const result = await verify(dir, acked, env);
        expect(result.replayed).toBeGreaterThanOrEqual(acked.size);
      });
    }, 60_000);

    it('a process that drained an earlier backlog leaves nothing that stops the next one from opening', async () => {
      await withSmallOutboxDisk(async (dir, env) => {
        // The store never answered this writer: its writes get new versions when the next process anchors.
        const acked = await runWriterAndKill(dir, 1_000, true, env);
        await verify(dir, acked, env);
        fillOutboxDisk(env);
        const again = await verify(dir, acked, env);
        expect(again.replayed).toBe(0);
      });
    }, 60_000);
  },
);

describe('outbox deleted while the cache runs, then SIGKILL', () => {
  it('acknowledges nothing after the deletion, and a restart opens a new outbox', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-crash-deleted-'));
    dirs.push(dir);
    const writer = child('deleting-writer.ts', { CRASH_DIR: dir, DELETE_AFTER: '300' });
    const lines: string[] = [];
    let stderr = '';
    writer.stderr?.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      writer.on('exit', (_code, signal) => resolve(signal)),
    );
    let buffer = '';
    await new Promise<void>((resolve, reject) => {
      writer.on('exit', () => reject(new Error(`writer exited before the kill: ${stderr}`)));
      writer.stdout?.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const complete = buffer.split('\n');
        buffer = complete.pop() ?? '';
        lines.push(...complete);
        const deletedAt = lines.indexOf('deleted');
        if (deletedAt >= 0 && lines.length - deletedAt > 200) {
          writer.kill('SIGKILL');
          resolve();
        }
      });
    });
    expect(await exited).toBe('SIGKILL');

    const deletedAt = lines.indexOf('deleted');
    expect(lines.slice(0, deletedAt).filter((l) => l.startsWith('ack')).length).toBeGreaterThanOrEqual(300);
    const after = lines.slice(deletedAt + 1);
    expect(after.filter((l) => l.startsWith('ack'))).toEqual([]);
    expect(after.length).toBeGreaterThan(0);
    expect(new Set(after)).toEqual(new Set(['refused ERR_OUTBOX']));

    const result = await verify(dir, new Map());
    expect(result.replayed).toBe(0);
  }, 60_000);
});
