import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type LineChild, startLineChild } from '../support/line-child.js';

const CHILD = fileURLToPath(new URL('./fleet-child.ts', import.meta.url));
const STALENESS_MS = 400;

type Answer = {
  ok: boolean;
  error?: string;
  values?: Record<string, unknown>;
  stats?: Record<string, number | string>;
};

const children: LineChild[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** `count` cache processes over one SQLite store file, each with its own outbox. */
function fleet(count: number) {
  const dir = mkdtempSync(join(tmpdir(), 'hc-fleet-'));
  dirs.push(dir);
  const store = join(dir, 'store.db');
  return Array.from({ length: count }, (_, i) => {
    const outboxDir = join(dir, `instance-${i}`);
    mkdirSync(outboxDir);
    const child = startLineChild(CHILD, {
      FLEET_STORE: store,
      FLEET_OUTBOX_DIR: outboxDir,
      FLEET_STALENESS_MS: String(STALENESS_MS),
    });
    children.push(child);
    return { send: (command: Record<string, unknown>) => child.send<Answer>(command) };
  });
}

const keysFrom = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('instances over one SQLite store, each in its own process', () => {
  it("a reader stops serving what the writer overwrote, deleted or appended to, once the writer's flush resolved and the staleness bound passed", async () => {
    const [writer, reader] = fleet(2) as [ReturnType<typeof fleet>[0], ReturnType<typeof fleet>[0]];
    const keys = keysFrom('k', 200);
    const deleted = keys.slice(0, 100);
    const appended = keys.slice(100);
    expect(await writer.send({ op: 'set', keys, value: 'v1' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'append', keys, item: 'i1' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'flush' })).toEqual({ ok: true });

    // The reader caches every value with its log.
    const before = await reader.send({ op: 'items', keys });
    for (const key of keys) expect(before.values?.[key]).toEqual({ value: 'v1', items: ['i1'] });

    expect(await writer.send({ op: 'set', keys, value: 'v2' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'delete', keys: deleted })).toEqual({ ok: true });
    expect(await writer.send({ op: 'append', keys: appended, item: 'i2' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'flush' })).toEqual({ ok: true });

    expect(await reader.send({ op: 'afterBound' })).toEqual({ ok: true });
    const after = await reader.send({ op: 'items', keys });
    for (const key of deleted) expect(after.values?.[key], key).toBeNull();
    for (const key of appended)
      expect(after.values?.[key], key).toEqual({ value: 'v2', items: ['i1', 'i2'] });
    const values = await reader.send({ op: 'get', keys: appended });
    for (const key of appended) expect(values.values?.[key], key).toBe('v2');

    const stats = (await reader.send({ op: 'stats' })).stats as Record<string, number | string>;
    expect(stats.feedDrops).toBeGreaterThanOrEqual(200);
    expect(stats.possiblyStaleReads).toBe(0);
    expect(stats.feedState).toBe('following');
  }, 60_000);

  it('three instances continuing one log in turn: each sees every item, in one order, after each flush', async () => {
    const instances = fleet(3);
    const key = 'thread';
    expect(await instances[0]?.send({ op: 'set', keys: [key], value: 'header' })).toEqual({ ok: true });
    expect(await instances[0]?.send({ op: 'flush' })).toEqual({ ok: true });
    const written: string[] = [];
    for (let turn = 0; turn < 9; turn++) {
      const by = instances[turn % 3] as ReturnType<typeof fleet>[0];
      // Every instance has the log cached before the next one writes to it.
      for (const instance of instances) await instance.send({ op: 'items', keys: [key] });
      expect(await by.send({ op: 'append', keys: [key], item: `turn ${turn}` })).toEqual({ ok: true });
      expect(await by.send({ op: 'flush' })).toEqual({ ok: true });
      written.push(`turn ${turn}`);
      await Promise.all(instances.map((instance) => instance.send({ op: 'afterBound' })));
      for (const [i, instance] of instances.entries()) {
        const { values } = await instance.send({ op: 'items', keys: [key] });
        expect(values?.[key], `instance ${i} after turn ${turn}`).toEqual({
          value: 'header',
          items: written,
        });
      }
    }
  }, 90_000);
});
