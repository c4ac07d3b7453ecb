import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { type LineChild, startLineChild } from '../support/line-child.js';
import { flushed, metric, untilEverySees } from './daemon-fleet.js';
import { type DaemonProcess, request, startDaemon } from './daemon-process.js';

const CHILD = fileURLToPath(new URL('./fleet-child.ts', import.meta.url));
const MAX_STALENESS_MS = 300;

type Answer = {
  ok: boolean;
  error?: string;
  values?: Record<string, unknown>;
  stats?: Record<string, number | string>;
};
type Instance = { send: (command: Record<string, unknown>) => Promise<Answer> };

const children: LineChild[] = [];
const daemons: DaemonProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) child.process.kill('SIGKILL');
  await Promise.all(daemons.splice(0).map((daemon) => daemon.stop('SIGKILL')));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A library instance (a child process) over the store file `store`, with its outbox in `dir/name`. */
function instance(dir: string, store: string, name: string): Instance {
  const outboxDir = join(dir, name);
  mkdirSync(outboxDir);
  const child = startLineChild(CHILD, {
    FLEET_STORE: store,
    FLEET_OUTBOX_DIR: outboxDir,
    FLEET_STALENESS_MS: String(MAX_STALENESS_MS),
  });
  children.push(child);
  return { send: (command: Record<string, unknown>) => child.send<Answer>(command) };
}

/** Two library instances and one daemon over the store file `store`, each with its own outbox. */
async function fleet(
  dir: string,
  store: string,
): Promise<{ instances: [Instance, Instance]; daemon: DaemonProcess }> {
  const instances = [instance(dir, store, 'instance-0'), instance(dir, store, 'instance-1')] as [
    Instance,
    Instance,
  ];
  const dataDir = join(dir, 'daemon');
  mkdirSync(dataDir);
  const daemon = await startDaemon(dataDir, {
    CACHE_DATA_DIR: dataDir,
    CACHE_STORE_PATH: store,
    CACHE_FLUSH_INTERVAL_MS: '5',
    CACHE_FEED_POLL_INTERVAL_MS: '50',
    CACHE_MAX_STALENESS_MS: String(MAX_STALENESS_MS),
  });
  daemons.push(daemon);
  return { instances, daemon };
}

/** Puts `replacement` where `store` was, the way an operator restores a file: the old one and its WAL go first. */
function replaceStoreFile(store: string, replacement: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${store}${suffix}`, { force: true });
  renameSync(replacement, store);
}

const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
const all = (value: unknown) => Object.fromEntries(keys.map((k) => [k, value]));

describe('a SQLite store file replaced under running instances (nothing stopped)', () => {
  it('by an older backup: every instance drops what it cached, says so, serves the backup, and writes into it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-replaced-'));
    dirs.push(dir);
    const store = join(dir, 'store.db');
    const { instances, daemon } = await fleet(dir, store);
    const [writer, reader] = instances;

    // Both instances and the daemon cache what the backup will hold.
    expect(await writer.send({ op: 'set', keys, value: 'backed up' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'flush' })).toEqual({ ok: true });
    const created = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (created.body as { thread_id: string }).thread_id;
    await request(daemon, 'POST', `/v1/threads/${id}/turns`, {
      json: { role: 'user', content: 'backed up' },
    });
    await flushed(daemon);
    const backup = join(dir, 'backup.db');
    const db = new Database(store, { fileMustExist: true });
    db.exec(`VACUUM INTO '${backup}'`);
    db.close();

    // Then everything moves on past the backup, and every instance caches the newer state.
    expect(await writer.send({ op: 'set', keys, value: 'newer' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'flush' })).toEqual({ ok: true });
    await request(daemon, 'POST', `/v1/threads/${id}/turns`, {
      json: { role: 'assistant', content: 'newer' },
    });
    await flushed(daemon);
    await Promise.all(instances.map((instance) => instance.send({ op: 'afterBound' })));
    for (const instance of instances)
      expect((await instance.send({ op: 'get', keys })).values).toEqual(all('newer'));
    expect((await request(daemon, 'GET', `/v1/threads/${id}`)).status).toBe(200);

    replaceStoreFile(store, backup);
    const replacedAt = Date.now();

    // Each instance notices and drops everything it cached; from the bound on it serves the backup.
    for (const instance of instances) {
      await expect
        .poll(async () => (await instance.send({ op: 'stats' })).stats?.feedResets, {
          timeout: 5_000,
          interval: 25,
        })
        .toBeGreaterThanOrEqual(1);
    }
    await expect
      .poll(() => metric(daemon, 'hybrid_cache_feed_resets_total'), { timeout: 5_000, interval: 25 })
      .toBeGreaterThanOrEqual(1);
    await Promise.all(instances.map((instance) => instance.send({ op: 'afterBound' })));
    for (const instance of instances)
      expect((await instance.send({ op: 'get', keys })).values).toEqual(all('backed up'));
    await untilEverySees([daemon], id, ['backed up'], ['backed up', 'newer'], {
      flushedAt: replacedAt,
      maxStalenessMs: MAX_STALENESS_MS,
    });

    // Writes go into the file now at the path, and the others see them.
    expect(await writer.send({ op: 'set', keys: ['k0'], value: 'after the restore' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'flush' })).toEqual({ ok: true });
    expect(await reader.send({ op: 'afterBound' })).toEqual({ ok: true });
    expect((await reader.send({ op: 'get', keys: ['k0'] })).values).toEqual({ k0: 'after the restore' });
    const onDisk = new Database(store, { readonly: true });
    const row = onDisk.prepare('SELECT json FROM cache_entries WHERE key = ?').get('k0') as { json: string };
    onDisk.close();
    expect(JSON.parse(row.json)).toBe('after the restore');
    for (const instance of instances) {
      const stats = (await instance.send({ op: 'stats' })).stats as Record<string, number | string>;
      expect(stats.feedState).toBe('following');
      expect(stats.feedDrops).toBeGreaterThanOrEqual(keys.length);
    }
  }, 30_000);

  it('deleted and recreated by a process started afterwards: every instance drops what it cached and serves only the new store', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hc-recreated-'));
    dirs.push(dir);
    const store = join(dir, 'store.db');
    const { instances, daemon } = await fleet(dir, store);
    const [writer] = instances;
    expect(await writer.send({ op: 'set', keys, value: 'old store' })).toEqual({ ok: true });
    expect(await writer.send({ op: 'flush' })).toEqual({ ok: true });
    const created = await request(daemon, 'POST', '/v1/threads', { json: { tool_name: 'chat' } });
    const id = (created.body as { thread_id: string }).thread_id;
    const flushedAt = await flushed(daemon);
    await Promise.all(instances.map((i) => i.send({ op: 'afterBound' })));
    for (const i of instances) expect((await i.send({ op: 'get', keys })).values).toEqual(all('old store'));
    await untilEverySees([daemon], id, [], null, { flushedAt, maxStalenessMs: MAX_STALENESS_MS });

    for (const suffix of ['', '-wal', '-shm']) rmSync(`${store}${suffix}`, { force: true });
    const newcomer = instance(dir, store, 'newcomer');
    expect(await newcomer.send({ op: 'set', keys: ['k0'], value: 'new store' })).toEqual({ ok: true });
    expect(await newcomer.send({ op: 'flush' })).toEqual({ ok: true });
    const recreatedAt = Date.now();

    for (const i of instances) {
      await expect
        .poll(async () => (await i.send({ op: 'stats' })).stats?.feedResets, { timeout: 5_000, interval: 25 })
        .toBeGreaterThanOrEqual(1);
    }
    await Promise.all(instances.map((i) => i.send({ op: 'afterBound' })));
    for (const i of instances) {
      expect((await i.send({ op: 'get', keys })).values).toEqual({ ...all(null), k0: 'new store' });
    }
    await untilEverySees([daemon], id, null, [], {
      flushedAt: recreatedAt,
      maxStalenessMs: MAX_STALENESS_MS,
    });
    expect(await metric(daemon, 'hybrid_cache_feed_resets_total')).toBeGreaterThanOrEqual(1);
  }, 30_000);
});
