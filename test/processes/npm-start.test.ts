import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempWorkDir } from './daemon-process.js';

/**
 * `npm start` as the README gives it: the built daemon, no compile step, and a SIGTERM sent to npm
 * (as a process manager sends it) reaches the daemon, which drains and frees its port.
 */

const root = new URL('../..', import.meta.url).pathname;
// The Node that runs this test runs npm and the daemon too, whatever the machine's default is.
const PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;

describe('npm start', () => {
  const work = tempWorkDir();

  beforeAll(() => {
    execFileSync('npm', ['run', 'build', '--silent'], {
      cwd: root,
      stdio: 'pipe',
      env: { ...process.env, PATH },
    });
  }, 120_000);

  afterAll(() => work.cleanup());

  it('serves the built daemon, and a SIGTERM sent to npm drains it and frees the port', async () => {
    const port = await freePort();
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: root,
      env: { PATH, DAEMON_PORT: String(port), CACHE_DATA_DIR: join(work.dir, 'data') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    npm.stdout.setEncoding('utf8').on('data', (chunk: string) => lines.push(...chunk.split('\n')));
    let stderr = '';
    npm.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));

    const deadline = Date.now() + 20_000;
    while (!lines.some((line) => line.includes('"msg":"listening"'))) {
      if (Date.now() > deadline || npm.exitCode !== null)
        throw new Error(`npm start did not serve:\n${lines.join('\n')}\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const created = await fetch(`http://127.0.0.1:${port}/v1/threads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tool_name: 'chat' }),
    });
    expect(created.status).toBe(201);

    npm.kill('SIGTERM');
    expect(await exited).toBe(0);
    const logged = lines
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string });
    expect(logged.map((line) => line.msg)).toEqual(
      expect.arrayContaining([
        'shutting down: refusing new requests, flushing writes to the store',
        'stopped',
      ]),
    );
    // The daemon is gone with npm, not orphaned: its port can be bound again.
    await expect(bind(port)).resolves.toBeUndefined();
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function bind(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}
