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

/** Starts a child and collects its stdout lines; `until` resolves once `done(lines)` holds (rejects if it exits first). */
function watchLines(script: string, env: Record<string, string>) {
  const proc = child(script, env);
  const lines: string[] = [];
  let stderr = '';
  proc.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    proc.on('exit', (_code, signal) => resolve(signal)),
  );
  const waiters: Array<{ done: (lines: string[]) => boolean; resolve: () => void }> = [];
  let buffer = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const complete = buffer.split('\n');
    buffer = complete.pop() ?? '';
    lines.push(...complete);
    for (const waiter of [...waiters]) {
      if (!waiter.done(lines)) continue;
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  const until = (done: (lines: string[]) => boolean) =>
    new Promise<void>((resolve, reject) => {
      if (done(lines)) return resolve();
      waiters.push({ done, resolve });
      proc.on('exit', () => reject(new Error(`${script} exited before the test was done: ${stderr}`)));
    });
  const kill = async () => {
    proc.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
  };
  return { lines, until, kill };
}

describe('outbox deleted while the cache runs, then SIGKILL', () => {
  it('the outbox heals: writes acknowledged before the deletion and after it reach the store after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-crash-healed-'));
    dirs.push(dir);
    const writer = watchLines('healing-writer.ts', {
      CRASH_DIR: dir,
      HEAL_WRITES: '203',
      AFTER_WRITES: '50',
    });
    await writer.until((lines) => lines.includes('acked 203'));

    // The store was down: every acknowledged write is in the outbox, and only there besides memory.
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `outbox.db${suffix}`), { force: true });
    await writer.until((lines) => lines.includes('after 50'));
    expect(writer.lines).toContain('healed 203');
    await writer.kill();

    const acked: Acked = new Map();
    for (let i = 0; i < 203; i++) acked.set(`k${i}`, { seq: i, deleted: false });
    for (let i = 0; i < 50; i++) acked.set(`after${i}`, { seq: i, deleted: false });
    const result = await verify(dir, acked);
    expect(result.replayed).toBe(253);
  }, 60_000);

  it('deleted by the writer itself mid-stream: no write is refused, and every acknowledged one survives the kill', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-crash-deleted-'));
    dirs.push(dir);
    const writer = watchLines('deleting-writer.ts', { CRASH_DIR: dir, DELETE_AFTER: '300' });
    const acksAfter = (lines: string[], marker: string) => {
      const at = lines.indexOf(marker);
      return at < 0 ? -1 : lines.slice(at + 1).filter((l) => l.startsWith('ack')).length;
    };
    await writer.until(
      (lines) =>
        acksAfter(lines, 'deleted') >= 200 &&
        acksAfter(lines, lines.find((l) => l.startsWith('healed')) ?? '-') >= 100,
    );
    await writer.kill();

    const { lines } = writer;
    const deletedAt = lines.indexOf('deleted');
    expect(lines.slice(0, deletedAt).filter((l) => l.startsWith('ack')).length).toBeGreaterThanOrEqual(300);
    expect(lines.filter((l) => l.startsWith('refused'))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('healed'))).toHaveLength(1);

    const acked: Acked = new Map();
    for (const line of lines) {
      const [kind, key, seq] = line.split(' ');
      if (kind !== 'ack' || !key || !seq) continue;
      if ((acked.get(key)?.seq ?? -1) < Number(seq)) acked.set(key, { seq: Number(seq), deleted: false });
    }
    const result = await verify(dir, acked);
    expect(result.replayed).toBe(acked.size);
  }, 60_000);
});
