import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/load-config.js';
import { loadConfig } from '../../src/config/load-config.js';
import { openFailureHint } from '../../src/daemon/startup-errors.js';
import { isNativeModuleFailure, nativeModuleMessage } from '../../src/storage/sqlite-file/sqlite-errors.js';
import { type DaemonProcess, spawnDaemon, startDaemon, tempWorkDir } from './daemon-process.js';

/** Start-up failures an operator meets, each reported with a hint that names what to change. */

const FATAL = 60;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function workDir(): string {
  const work = tempWorkDir();
  cleanups.push(work.cleanup);
  return work.dir;
}

function fatalLine(logs: DaemonProcess['logs']) {
  const fatal = logs.filter((line) => line.level === FATAL);
  expect(fatal).toHaveLength(1);
  return fatal[0] as (typeof fatal)[number];
}

describe('daemon start-up errors', () => {
  it('names DAEMON_PORT when the port is already in use, and exits 1', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => holder.close(resolve)));
    const address = holder.address();
    const port = typeof address === 'object' && address ? address.port : 0;

    const proc = spawnDaemon(workDir(), { DAEMON_PORT: String(port) });
    expect((await proc.exited).code).toBe(1);
    const fatal = fatalLine(proc.logs);
    expect(fatal.msg).toBe('cannot listen');
    expect(fatal.hint).toBe(
      `port ${port} on 127.0.0.1 is already in use: stop the process that holds it, or set DAEMON_PORT to a free port`,
    );
  });

  it('names CACHE_DATA_DIR when another daemon holds the outbox, and leaves the first one serving', async () => {
    const cwd = workDir();
    const first = await startDaemon(cwd, {});
    cleanups.push(() => first.stop('SIGKILL'));

    const second = spawnDaemon(cwd, {});
    expect((await second.exited).code).toBe(1);
    const fatal = fatalLine(second.logs);
    expect(fatal.msg).toBe('cannot open the conversation store');
    expect(fatal.hint).toBe(
      `the outbox ${join(cwd, 'data', 'outbox.db')} is locked by another running daemon: stop it, or give each daemon its own CACHE_DATA_DIR (several daemons may share one store, never one outbox)`,
    );
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
  });

  it('tells a native module that cannot be loaded apart from a bad file, and how to fix it', () => {
    const dir = workDir();
    const notAnAddon = join(dir, 'better_sqlite3.node');
    writeFileSync(notAnAddon, 'not a shared object');
    let dlopenError: unknown;
    try {
      process.dlopen({ exports: {} }, notAnAddon);
    } catch (error) {
      dlopenError = error;
    }
    expect((dlopenError as { code?: string }).code).toBe('ERR_DLOPEN_FAILED');

    expect(isNativeModuleFailure(dlopenError)).toBe(true);
    expect(nativeModuleMessage(dlopenError)).toContain(
      'Reinstall dependencies with the Node.js that runs this process',
    );
    const config: Config = loadConfig({ CACHE_DATA_DIR: dir }, dir).config;
    const wrapped = new Error('cannot open', { cause: dlopenError });
    expect(openFailureHint(wrapped, config)).toMatch(
      /^the SQLite native module \(better-sqlite3\) cannot be loaded by this Node\.js v\d+\.\d+\.\d+ \(linux-x64\): reinstall dependencies/,
    );
    expect(openFailureHint(new Error('disk I/O error'), config)).toBeUndefined();
  });
});
