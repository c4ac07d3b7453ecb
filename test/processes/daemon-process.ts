import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Runs src/daemon/main.ts through tsx, so the tests need no prior build. */
const MAIN = fileURLToPath(new URL('../../src/daemon/main.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

export type LogLine = { level: number; msg: string } & Record<string, unknown>;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DaemonProcess {
  url: string;
  child: ChildProcess;
  /** JSON log lines seen on stdout so far. */
  logs: LogLine[];
  stderr(): string;
  exited: Promise<Exit>;
  /** Sends a signal and waits for the process to exit. */
  stop(signal: NodeJS.Signals): Promise<Exit>;
}

/** A temporary working directory (no stray `.env`); removed by `cleanup`. */
export function tempWorkDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'hybrid-cache-daemon-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Spawns the daemon in `cwd` with only `env` (plus PATH) as its environment, so a developer's
 * variables cannot leak in. Port 0 unless given: the daemon logs the port it got.
 */
export function spawnDaemon(cwd: string, env: Record<string, string>): Omit<DaemonProcess, 'url'> {
  const child = spawn(process.execPath, ['--import', TSX, MAIN], {
    cwd,
    env: { PATH: process.env.PATH ?? '', DAEMON_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let stderr = '';
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ level: 0, msg: line });
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    logs,
    stderr: () => stderr,
    exited,
    stop: (signal) => {
      child.kill(signal);
      return exited;
    },
  };
}

/** Starts the daemon and waits (bounded) until it logs that it is listening. */
export async function startDaemon(cwd: string, env: Record<string, string>): Promise<DaemonProcess> {
  const proc = spawnDaemon(cwd, env);
  const deadline = Date.now() + 25_000;
  let exit: Exit | undefined;
  void proc.exited.then((e) => {
    exit = e;
  });
  while (Date.now() < deadline) {
    const listening = proc.logs.find((line) => line.msg === 'listening');
    if (listening) return { ...proc, url: `http://127.0.0.1:${listening.port}` };
    if (exit) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  proc.child.kill('SIGKILL');
  throw new Error(
    `daemon did not start (exit ${JSON.stringify(exit)}):\n${proc.logs.map((l) => JSON.stringify(l)).join('\n')}\n${proc.stderr()}`,
  );
}

export async function request(
  daemon: Pick<DaemonProcess, 'url'>,
  method: string,
  path: string,
  options: { json?: unknown; body?: string; token?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined = options.body;
  if (options.json !== undefined) body = JSON.stringify(options.json);
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await fetch(`${daemon.url}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}
