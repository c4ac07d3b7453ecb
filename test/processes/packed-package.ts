import { type ChildProcess, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** What the package tests share: the repository, a clone-like copy of it, npm and node runners. */

export const root = new URL('../..', import.meta.url).pathname;

/** Runs npm quietly, offline-first (every version it needs was installed for the repository already). */
export function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd,
    encoding: 'utf8',
    stdio: 'pipe',
    env: { ...env, npm_config_loglevel: 'error' },
  });
}

/** Runs the Node that runs the tests. */
export function node(args: string[], cwd: string): string {
  return execFileSync(process.execPath, args, { cwd, encoding: 'utf8', stdio: 'pipe' });
}

/** The working tree as a clone would have it in `clone`: tracked and new files, nothing ignored (no dist/). */
export function copyAsClone(clone: string): void {
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], {
    cwd: root,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((file) => file && existsSync(join(root, file)));
  for (const file of files) {
    mkdirSync(dirname(join(clone, file)), { recursive: true });
    cpSync(join(root, file), join(clone, file));
  }
  // `npm install` in the clone would install exactly these; linking saves the download.
  symlinkSync(join(root, 'node_modules'), join(clone, 'node_modules'));
}

/** Waits (bounded) for the daemon's `listening` log line and returns its port. */
export function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`daemon did not start:\n${out}\n${err}`));
    }, 20_000);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      for (const line of out.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue;
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before listening:\n${out}\n${err}`));
    });
  });
}
