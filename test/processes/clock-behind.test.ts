import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStorage } from '../../src/index.js';

const here = new URL('.', import.meta.url).pathname;
const CLOCK_OFFSET = fileURLToPath(new URL('../support/clock-offset.mjs', import.meta.url));
const HOUR_MS = 3_600_000;

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface BlindResult {
  afterFlush: unknown;
  superseded: number;
  pending: number;
  now: number;
}

/** Runs one blind write in a child process whose wall clock is `offsetMs` off. */
async function blindWrite(
  env: { store: string; outbox: string; op: 'set' | 'delete' | 'append'; key: string; value?: unknown },
  offsetMs = 0,
): Promise<BlindResult> {
  const child = spawn(
    process.execPath,
    ['--import', CLOCK_OFFSET, '--import', 'tsx', join(here, 'blind-writer.ts')],
    {
      env: {
        ...process.env,
        CLOCK_OFFSET_MS: String(offsetMs),
        BLIND_STORE: env.store,
        BLIND_OUTBOX: env.outbox,
        BLIND_OP: env.op,
        BLIND_KEY: env.key,
        BLIND_VALUE: JSON.stringify(env.value ?? null),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code, err).toBe(0);
  return JSON.parse(out) as BlindResult;
}

async function stored(storePath: string, key: string) {
  const store = new SqliteStorage({ path: storePath });
  try {
    return (await store.getMany([key])).get(key);
  } finally {
    await store.close();
  }
}

describe('a process whose clock is an hour behind the store (real child processes)', () => {
  for (const disk of ['durability none', 'a fresh outbox file'] as const) {
    it(`does not undo its blind set or delete after flush, with ${disk}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'hc-clock-behind-'));
      dirs.push(dir);
      const store = join(dir, 'store.db');
      const outbox = (n: number) => (disk === 'durability none' ? '' : join(dir, `outbox-${n}.db`));

      const first = await blindWrite({ store, outbox: outbox(1), op: 'set', key: 'k', value: 'old' });
      expect(first).toMatchObject({ afterFlush: { value: 'old', items: [] }, pending: 0 });

      const set = await blindWrite({ store, outbox: outbox(2), op: 'set', key: 'k', value: 'new' }, -HOUR_MS);
      expect(set.now).toBeLessThan(Date.now() - HOUR_MS / 2); // the child's clock really was behind
      expect(set).toMatchObject({ afterFlush: { value: 'new', items: [] }, superseded: 0, pending: 0 });
      expect(JSON.parse((await stored(store, 'k'))?.json ?? 'null')).toBe('new');

      const deleted = await blindWrite({ store, outbox: outbox(3), op: 'delete', key: 'k' }, -HOUR_MS);
      expect(deleted).toMatchObject({ afterFlush: null, superseded: 0, pending: 0 });
      expect((await stored(store, 'k'))?.json).toBeNull();

      // A fresh reader (normal clock, its own new outbox) sees the delete too.
      const reader = await blindWrite({ store, outbox: outbox(4), op: 'set', key: 'other', value: 1 });
      expect(reader.pending).toBe(0);
      expect((await stored(store, 'k'))?.json).toBeNull();
    }, 60_000);
  }

  it('appends after every older item, never refused, from a fresh disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-clock-behind-'));
    dirs.push(dir);
    const store = join(dir, 'store.db');
    const outbox = (n: number) => join(dir, `outbox-${n}.db`);
    await blindWrite({ store, outbox: outbox(1), op: 'set', key: 'log', value: 'header' });
    await blindWrite({ store, outbox: outbox(2), op: 'append', key: 'log', value: 'first' });
    const behind = await blindWrite(
      { store, outbox: outbox(3), op: 'append', key: 'log', value: 'second' },
      -HOUR_MS,
    );
    expect(behind.now).toBeLessThan(Date.now() - HOUR_MS / 2);
    expect(behind).toMatchObject({
      afterFlush: { value: 'header', items: ['first', 'second'] },
      superseded: 0,
    });
    const items = (await stored(store, 'log'))?.items?.map((item) => JSON.parse(item.json));
    expect(items).toEqual(['first', 'second']);
  }, 60_000);
});
