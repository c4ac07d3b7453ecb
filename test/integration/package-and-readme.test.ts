import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as a user gets it: a fresh clone packed with `npm pack` (which builds dist/), installed
 * into an empty default `npm init -y` project (CommonJS), then loaded with import() and require(),
 * the README's example run there, and the daemon started through its bin.
 */

const root = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const SPEC_NAMES = [
  'createHybridCache',
  'MemoryStorage',
  'SqliteStorage',
  'SupabaseStorage',
  'ValidationError',
  'BackpressureError',
  'StorageUnavailableError',
  'ClosedError',
  'ConversationStore',
];

const work = mkdtempSync(join(tmpdir(), 'hybrid-cache-pack-'));
const clone = join(work, 'clone');
const project = join(work, 'project');
const npm = (args: string[], cwd: string) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd,
    encoding: 'utf8',
    stdio: 'pipe',
    env: { ...process.env, npm_config_loglevel: 'error' },
  });
const node = (args: string[], cwd = project) =>
  execFileSync(process.execPath, args, { cwd, encoding: 'utf8', stdio: 'pipe' });

/** The working tree as a clone would have it: tracked and new files, nothing ignored (no dist/). */
function copyAsClone(): void {
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

describe('the package as users get it', () => {
  let tarball: string;

  beforeAll(() => {
    copyAsClone();
    expect(existsSync(join(clone, 'dist'))).toBe(false);
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], clone)) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    const [info] = packed;
    if (!info) throw new Error('npm pack produced nothing');
    const paths = info.files.map((file) => file.path);
    expect(paths).toContain('dist/index.js');
    expect(paths).toContain('dist/index.d.ts');
    expect(paths).toContain('dist/daemon/main.js');
    expect(paths.some((path) => path.startsWith('supabase/migrations/'))).toBe(true);
    expect(paths.some((path) => path.startsWith('src/') || path.startsWith('test/'))).toBe(false);
    tarball = join(work, info.filename);
    mkdirSync(project);
    npm(['init', '-y'], project);
    npm(['install', tarball], project);
  }, 300_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('gives the spec API to import() and to require() in a default CommonJS project', () => {
    const imported = JSON.parse(
      node(['-e', "import('hybrid-cache').then((m) => console.log(JSON.stringify(Object.keys(m))))"]),
    ) as string[];
    const required = JSON.parse(
      node(['-e', "console.log(JSON.stringify(Object.keys(require('hybrid-cache'))))"]),
    ) as string[];
    for (const name of SPEC_NAMES) {
      expect(imported).toContain(name);
      expect(required).toContain(name);
    }
    expect(JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')).type ?? 'commonjs').toBe(
      'commonjs',
    );
  });

  it('gives hybrid-cache/testing to an installed project without a test runner, and its contract suite runs under node:test', () => {
    expect(existsSync(join(project, 'node_modules', 'vitest'))).toBe(false);
    const exported = JSON.parse(
      node(['-e', "import('hybrid-cache/testing').then((m) => console.log(JSON.stringify(Object.keys(m))))"]),
    ) as string[];
    expect(exported).toEqual(expect.arrayContaining(['describeStorageContract', 'FaultyStorage']));
    writeFileSync(
      join(project, 'contract.test.mjs'),
      [
        "import { after, before, describe, it } from 'node:test';",
        "import { MemoryStorage, SqliteStorage } from 'hybrid-cache';",
        "import { describeStorageContract, FaultyStorage } from 'hybrid-cache/testing';",
        'const runner = { describe, it, beforeAll: before, afterAll: after };',
        "describeStorageContract('memory', async () => ({ storage: new MemoryStorage() }), runner);",
        'describeStorageContract(',
        "  'sqlite behind a healthy fault wrapper',",
        "  async () => ({ storage: new FaultyStorage(new SqliteStorage({ path: ':memory:' })) }),",
        '  runner,',
        ');',
      ].join('\n'),
    );
    const out = node(['--test', '--test-reporter=tap', 'contract.test.mjs']);
    const passed = Number(/^# pass (\d+)$/m.exec(out)?.[1]);
    expect(passed).toBeGreaterThanOrEqual(30);
    expect(out).toMatch(/^# fail 0$/m);
  });

  it('types the API for TypeScript importers and requirers (module nodenext)', () => {
    writeFileSync(
      join(project, 'esm-check.mts'),
      "import { createHybridCache, MemoryStorage } from 'hybrid-cache';\n" +
        'const cache = await createHybridCache<{ n: number }>({ storage: new MemoryStorage(), outbox: { durability: "none" } });\n' +
        "const value: { n: number } | undefined = await cache.get('k');\nexport { value };\n" +
        "import { FaultyStorage } from 'hybrid-cache/testing';\n" +
        'const faulty: FaultyStorage<MemoryStorage> = new FaultyStorage(new MemoryStorage());\n' +
        'faulty.failNext(1, "configuration");\nexport { faulty };\n',
    );
    writeFileSync(
      join(project, 'cjs-check.cts'),
      "import hybrid = require('hybrid-cache');\nconst storage: hybrid.Storage = new hybrid.SqliteStorage({ path: 'x.db' });\nexport = storage;\n",
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: [],
        },
        files: ['esm-check.mts', 'cjs-check.cts'],
      }),
    );
    node([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project]);
  });

  it('runs the README embedding example as written, saved as example.mts (Node type stripping)', () => {
    const example = read('examples/embed.ts');
    expect(read('README.md')).toContain(example.trim());
    writeFileSync(join(project, 'example.mts'), example);
    const out = node(['example.mts']);
    expect(out.trim().split('\n')).toEqual(['1', '0', 'closed with 0 pending']);
  });

  it('starts the daemon through its bin, serves, and drains on SIGTERM', async () => {
    const bin = join(project, 'node_modules', '.bin', 'hybrid-cache-daemon');
    const daemon = spawn(bin, [], {
      cwd: project,
      env: { PATH: process.env.PATH ?? '', DAEMON_PORT: '0', CACHE_DATA_DIR: join(work, 'data') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const port = await listeningPort(daemon);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const exit = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
    daemon.kill('SIGTERM');
    expect(await exit).toBe(0);
  });

  it('loads the library without the daemon-only dependencies (fastify, prom-client)', () => {
    for (const dependency of ['fastify', 'prom-client']) {
      rmSync(join(project, 'node_modules', dependency), { recursive: true, force: true });
    }
    const names = JSON.parse(
      node(['-e', "console.log(JSON.stringify(Object.keys(require('hybrid-cache'))))"]),
    );
    expect(names).toEqual(expect.arrayContaining(SPEC_NAMES));
  });
});

/** Waits (bounded) for the daemon's `listening` log line and returns its port. */
function listeningPort(child: ChildProcess): Promise<number> {
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
