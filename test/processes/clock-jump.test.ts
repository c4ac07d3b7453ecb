import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStorage } from '../../src/index.js';
import { LOGICAL_SLOTS } from '../../src/storage/contract/version.js';
import { type LineChild, startLineChild } from '../support/line-child.js';

const CHILD = fileURLToPath(new URL('./clock-child.ts', import.meta.url));
const YEAR_MS = 365 * 24 * 3_600_000;

const children: LineChild[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

type Answer = { ok: boolean; error?: string; stats?: Record<string, number> };

/** A cache in its own process over the shared store, with an outbox of its own. */
function startChild(
  store: string,
  outboxDir: string,
): LineChild & { send(c: Record<string, unknown>): Promise<Answer> } {
  mkdirSync(outboxDir, { recursive: true });
  const child = startLineChild(CHILD, { CLOCK_STORE: store, CLOCK_OUTBOX_DIR: outboxDir });
  children.push(child);
  return child;
}

async function stored(store: string, keys: string[]) {
  const storage = new SqliteStorage({ path: store });
  try {
    return await storage.getMany(keys);
  } finally {
    await storage.close();
  }
}

describe('a wall clock that jumps far ahead, in one of two processes over one SQLite store', () => {
  it('neither hangs nor poisons the versions: the other process keeps working and its later writes win', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-clock-jump-'));
    dirs.push(dir);
    const store = join(dir, 'store.db');
    const jumpy = startChild(store, join(dir, 'jumpy'));
    const steady = startChild(store, join(dir, 'steady'));

    expect(await jumpy.send({ op: 'set', key: 'start', value: 'jumpy' })).toEqual({ ok: true });
    expect(await jumpy.send({ op: 'flush' })).toEqual({ ok: true });

    // One write while the clock reads the year 2300: versions there would pass 2^53.
    await jumpy.send({ op: 'clock', offsetMs: Date.UTC(2300, 0, 1) - Date.now() });
    expect(await jumpy.send({ op: 'set', key: 'k2300', value: 'jumpy' })).toEqual({ ok: true });
    expect(await jumpy.send({ op: 'flush' })).toEqual({ ok: true });
    // Then a year ahead, then right again.
    await jumpy.send({ op: 'clock', offsetMs: YEAR_MS });
    expect(await jumpy.send({ op: 'set', key: 'kyear', value: 'jumpy' })).toEqual({ ok: true });
    expect(await jumpy.send({ op: 'flush' })).toEqual({ ok: true });
    const during = (await jumpy.send({ op: 'stats' })).stats as Record<string, number>;
    expect(during.clockAheadMs).toBeGreaterThan(YEAR_MS - 60_000);
    await jumpy.send({ op: 'clock', offsetMs: 0 });
    expect(await jumpy.send({ op: 'set', key: 'kback', value: 'jumpy' })).toEqual({ ok: true });
    expect(await jumpy.send({ op: 'flush' })).toEqual({ ok: true });
    const after = (await jumpy.send({ op: 'stats' })).stats as Record<string, number>;
    expect(after.clockAheadMs).toBe(0);
    expect(after.clockReadingsDistrusted).toBeGreaterThanOrEqual(2);

    // The jumpy process said so, with both times.
    const said = jumpy.errors.filter((line) => String(line.msg).includes('jumped implausibly far ahead'));
    expect(said.length).toBeGreaterThanOrEqual(1);
    expect(said[0]).toMatchObject({
      readingTime: expect.stringMatching(/^2300-/),
      trustedTime: expect.any(String),
    });

    // The steady process writes the same keys later: its writes win, none of its writes loses.
    const keys = ['k2300', 'kyear', 'kback'];
    for (const key of keys)
      expect(await steady.send({ op: 'set', key, value: 'steady' })).toEqual({ ok: true });
    expect(await steady.send({ op: 'flush' })).toEqual({ ok: true });
    expect(((await steady.send({ op: 'stats' })).stats as Record<string, number>).superseded).toBe(0);

    const now = Date.now() * LOGICAL_SLOTS;
    const entries = await stored(store, ['start', ...keys]);
    for (const key of keys) expect(entries.get(key)?.json, key).toBe('"steady"');
    for (const [key, entry] of entries) {
      expect(Number.isSafeInteger(entry.version), key).toBe(true);
      expect(entry.version, `${key} carries a version of real time`).toBeLessThanOrEqual(
        now + 60_000 * LOGICAL_SLOTS,
      );
    }
    // And the jumpy process keeps working too.
    expect(await jumpy.send({ op: 'set', key: 'later', value: 'jumpy' })).toEqual({ ok: true });
    expect(await jumpy.send({ op: 'flush' })).toEqual({ ok: true });
  }, 60_000);
});
