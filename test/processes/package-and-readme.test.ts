import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unsupportedNodeMessage } from '../../src/node-support.js';
import { findNode20 } from '../support/node20.js';
import { copyAsClone, listeningPort, node, npm, root } from './packed-package.js';

/**
 * The package as a user gets it: a fresh clone packed with `npm pack` (which builds dist/), installed
 * into an empty default `npm init -y` project (CommonJS), then loaded with import() and require()
 * through each entry point, the README's example run there, and the daemon started through its bin.
 */

const read = (path: string) => readFileSync(join(root, path), 'utf8');
/** Every name each entry point exports, and nothing else: the public API. */
const ENTRY_POINTS: Record<string, string[]> = {
  'hybrid-cache': [
    'BackpressureError',
    'ClockError',
    'ClosedError',
    'CorruptValueError',
    'DEFAULT_FEED_PAGE_LIMIT',
    'DEFAULT_TOMBSTONE_RETENTION_MS',
    'FlushTimeoutError',
    'HybridCacheError',
    'LOGICAL_SLOTS',
    'MemoryStorage',
    'OutboxError',
    'PermanentStorageError',
    'SqliteStorage',
    'StorageConfigurationError',
    'StorageUnavailableError',
    'TransientStorageError',
    'ValidationError',
    'ValueTooLargeError',
    'compareItems',
    'createHybridCache',
    'isAppend',
    'versionTimeMs',
  ],
  'hybrid-cache/supabase': ['SupabaseStorage'],
  'hybrid-cache/postgres': ['PostgresStorage', 'migrate'],
  'hybrid-cache/conversation': [
    'ConversationStore',
    'MAX_CHAIN_DEPTH',
    'ParentThreadNotFoundError',
    'ThreadNotFoundError',
    'TurnLimitError',
    'isThreadId',
    'threadKey',
  ],
  'hybrid-cache/testing': [
    'FaultyStorage',
    'appended',
    'describeAppendContract',
    'describeFeedContract',
    'describeStorageContract',
    'item',
    'put',
    'putWithLogFloor',
    'tombstone',
  ],
};
/** Modules of the remote-store clients, which the root must never load. */
const REMOTE_CLIENT = /\/node_modules\/(@supabase\/|pg\/|pg-[a-z-]+\/|postgres\/)/;

const work = mkdtempSync(join(tmpdir(), 'hybrid-cache-pack-'));
const clone = join(work, 'clone');
const project = join(work, 'project');
const installed = join(project, 'node_modules', 'hybrid-cache');
const inProject = (args: string[]) => node(args, project);
const json = <T>(out: string) => JSON.parse(out) as T;

/** The module URLs resolved while `load` (a script) runs, from a resolve hook in the child process. */
function modulesResolvedBy(load: string): string[] {
  const script = [
    "const { registerHooks } = require('node:module');",
    'const seen = [];',
    'registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r; } });',
    `Promise.resolve().then(() => ${load}).then(() => console.log(JSON.stringify(seen)));`,
  ].join('\n');
  return json<string[]>(inProject(['-e', script]));
}

describe('the package as users get it', () => {
  let tarball: string;

  beforeAll(() => {
    copyAsClone(clone);
    const packed = json<Array<{ filename: string; files: Array<{ path: string }> }>>(
      npm(['pack', '--json', '--pack-destination', work], clone),
    );
    const [info] = packed;
    if (!info) throw new Error('npm pack produced nothing');
    const paths = info.files.map((file) => file.path);
    for (const entry of [
      'index',
      'supabase/index',
      'postgres/index',
      'conversation/index',
      'testing/index',
    ]) {
      expect(paths).toContain(`dist/${entry}.js`);
      expect(paths).toContain(`dist/${entry}.d.ts`);
    }
    expect(paths).toContain('dist/daemon/main.js');
    expect(paths).toContain('dist/postgres/migrate-cli.js');
    expect(paths).toContain('supabase/plain-postgresql/bootstrap.sql');
    expect(paths.some((path) => path.startsWith('supabase/migrations/'))).toBe(true);
    expect(paths.some((path) => path.startsWith('src/') || path.startsWith('test/'))).toBe(false);
    tarball = join(work, info.filename);
    mkdirSync(project);
    npm(['init', '-y'], project);
    npm(['install', tarball], project);
  }, 300_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('gives each entry point its names, and only those, to import() and to require() in a default CommonJS project', () => {
    for (const [entry, names] of Object.entries(ENTRY_POINTS)) {
      const imported = json<string[]>(
        inProject(['-e', `import('${entry}').then((m) => console.log(JSON.stringify(Object.keys(m))))`]),
      );
      const required = json<string[]>(
        inProject(['-e', `console.log(JSON.stringify(Object.keys(require('${entry}'))))`]),
      );
      expect(imported.sort(), entry).toEqual(names);
      expect(required.filter((name) => name !== '__esModule').sort(), entry).toEqual(names);
    }
    expect(
      json<{ type?: string }>(readFileSync(join(project, 'package.json'), 'utf8')).type ?? 'commonjs',
    ).toBe('commonjs');
  });

  it('loads no Supabase or PostgreSQL client through the root, by import() or require()', () => {
    for (const load of ["import('hybrid-cache')", "require('hybrid-cache')"]) {
      const resolved = modulesResolvedBy(load);
      expect(resolved.some((url) => url.includes('/node_modules/hybrid-cache/dist/index.js'))).toBe(true);
      expect(resolved.filter((url) => REMOTE_CLIENT.test(url))).toEqual([]);
    }
    // The probe sees a client when one loads: hybrid-cache/supabase does load supabase-js.
    const viaSubpath = modulesResolvedBy("import('hybrid-cache/supabase')");
    expect(viaSubpath.some((url) => url.includes('/node_modules/@supabase/supabase-js/'))).toBe(true);
    // And hybrid-cache/postgres loads pg (node-postgres), and no Supabase client.
    const viaPostgres = modulesResolvedBy("import('hybrid-cache/postgres')");
    expect(viaPostgres.some((url) => url.includes('/node_modules/pg/'))).toBe(true);
    expect(viaPostgres.some((url) => url.includes('/node_modules/@supabase/'))).toBe(false);
  });

  it('installs hybrid-cache-migrate, which prints its usage', () => {
    const out = execFileSync(join(project, 'node_modules', '.bin', 'hybrid-cache-migrate'), ['--help'], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(out).toContain('Usage: hybrid-cache-migrate');
  });

  it('gives hybrid-cache/testing to an installed project without a test runner, and its contract suite runs under node:test', () => {
    expect(readdirSync(join(project, 'node_modules'))).not.toContain('vitest');
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
    const out = inProject(['--test', '--test-reporter=tap', 'contract.test.mjs']);
    const passed = Number(/^# pass (\d+)$/m.exec(out)?.[1]);
    expect(passed).toBeGreaterThanOrEqual(30);
    expect(out).toMatch(/^# fail 0$/m);
  });

  it('publishes declarations without @internal members', () => {
    const declarations = readdirSync(join(installed, 'dist'), { recursive: true, encoding: 'utf8' }).filter(
      (path) => path.endsWith('.d.ts'),
    );
    expect(declarations).toContain('index.d.ts');
    for (const path of declarations) {
      expect(readFileSync(join(installed, 'dist', path), 'utf8'), path).not.toMatch(/@internal/);
    }
  });

  it('types every entry point for TypeScript importers and requirers (module nodenext), internal members hidden', () => {
    writeFileSync(
      join(project, 'esm-check.mts'),
      [
        "import { createHybridCache, MemoryStorage, type HybridCache } from 'hybrid-cache';",
        "import { SupabaseStorage, type SupabaseStorageOptions } from 'hybrid-cache/supabase';",
        "import { ConversationStore, type ThreadContext, ThreadNotFoundError } from 'hybrid-cache/conversation';",
        "import { FaultyStorage } from 'hybrid-cache/testing';",
        'const cache = await createHybridCache<{ n: number }>({ storage: new MemoryStorage(), outbox: { durability: "none" } });',
        "const value: { n: number } | undefined = await cache.get('k');",
        '// @ts-expect-error anchorClock is @internal: not in the published types',
        'cache.anchorClock();',
        'const conversations = new ConversationStore({ cache });',
        'const thread: ThreadContext | undefined = await conversations.getThread("x");',
        "const options: SupabaseStorageOptions = { url: 'http://127.0.0.1:1', key: 'k' };",
        'const supabase: typeof SupabaseStorage = SupabaseStorage;',
        'const faulty: FaultyStorage<MemoryStorage> = new FaultyStorage(new MemoryStorage());',
        'faulty.failNext(1, "configuration");',
        'const caches: HybridCache[] = [];',
        'export { value, thread, options, supabase, faulty, caches, ThreadNotFoundError };',
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'cjs-check.cts'),
      [
        "import hybrid = require('hybrid-cache');",
        "import conversation = require('hybrid-cache/conversation');",
        "const storage: hybrid.Storage = new hybrid.SqliteStorage({ path: 'x.db' });",
        "const key: string = conversation.threadKey('x');",
        'export = { storage, key };',
      ].join('\n'),
    );
    const tsc = (compilerOptions: Record<string, unknown>) => {
      const options = {
        module: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        ...compilerOptions,
      };
      writeFileSync(
        join(project, 'tsconfig.json'),
        JSON.stringify({ compilerOptions: options, files: ['esm-check.mts', 'cjs-check.cts'] }),
      );
      inProject([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project]);
    };
    tsc({ skipLibCheck: true, types: [] });
    // Declaration files checked too: nothing in them may name a declaration the build stripped as
    // internal. (@types/node from the repository, which the dependencies' declarations need.)
    tsc({ skipLibCheck: false, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] });
  });

  it('runs the README embedding example as written, saved as example.mts (Node type stripping)', () => {
    const example = read('examples/embed.ts');
    expect(read('README.md')).toContain(example.trim());
    writeFileSync(join(project, 'example.mts'), example);
    const out = inProject(['example.mts']);
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

  describe('on Node.js 20, which hybrid-cache does not support', () => {
    let node20: string;
    let refusal: string;
    let minor: number;
    let env: NodeJS.ProcessEnv;
    /** Runs `command` with Node 20 first on PATH (npm and `#!/usr/bin/env node` scripts then run on it). */
    const run = (command: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}) =>
      spawnSync(command, args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000 });

    beforeAll(() => {
      node20 = findNode20();
      const version = execFileSync(node20, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
      refusal = unsupportedNodeMessage(version) as string;
      minor = Number(version.split('.')[1]);
      expect(refusal).toContain(`Node.js ${version}`);
      expect(refusal).toContain('Node.js 22.12 or later');
      env = { ...process.env, PATH: `${dirname(node20)}${delimiter}${process.env.PATH ?? ''}` };
    }, 300_000);

    it('npm refuses install, ci and scripts in a clone, naming the Node.js needed (devEngines)', () => {
      const manifest = join(work, 'manifest-only');
      mkdirSync(manifest);
      for (const file of ['package.json', 'package-lock.json'])
        cpSync(join(clone, file), join(manifest, file));
      for (const args of [['install'], ['ci'], ['start']]) {
        const npmRun = run('npm', [...args, '--no-audit', '--no-fund'], manifest);
        expect(npmRun.status, args[0]).toBe(1);
        expect(npmRun.stderr).toContain('EBADDEVENGINES');
        expect(npmRun.stderr).toMatch(/>=22\.12.*v20\./);
      }
      expect(readdirSync(manifest)).not.toContain('node_modules');
    });

    it('the daemon bin, and npm start and npm test forced past devEngines, exit 1 with one line', () => {
      const bin = run(join(project, 'node_modules', '.bin', 'hybrid-cache-daemon'), [], project, {
        DAEMON_PORT: '0',
        CACHE_DATA_DIR: join(work, 'data-node20'),
      });
      expect({ status: bin.status, signal: bin.signal, stderr: bin.stderr, stdout: bin.stdout }).toEqual({
        status: 1,
        signal: null,
        stderr: `${refusal}\n`,
        stdout: '',
      });
      expect(readdirSync(work)).not.toContain('data-node20');
      // An npm that ignores devEngines (older, or --force) runs the scripts: they refuse themselves.
      for (const args of [['start'], ['test', '--', '--help']]) {
        const script = run('npm', [args[0] as string, '--force', '--silent', ...args.slice(1)], clone, {
          DAEMON_PORT: '0',
          CACHE_DATA_DIR: join(work, 'data-node20'),
        });
        expect({ status: script.status, signal: script.signal, stderr: script.stderr }, args[0]).toEqual({
          status: 1,
          signal: null,
          stderr: `${refusal}\n`,
        });
      }
    });

    it('importing any entry point throws the message instead of loading the native module', () => {
      for (const entry of Object.keys(ENTRY_POINTS)) {
        const imported = run(
          node20,
          ['-e', `import('${entry}').then(() => console.log('loaded'), (e) => console.log(e.message))`],
          project,
        );
        expect(imported.status, entry).toBe(0);
        expect(imported.stdout, entry).toBe(`${refusal}\n`);
        // Refused before supabase-js loaded: it warns about Node 20 as it loads.
        expect(imported.stderr, entry).toBe('');
        if (minor < 19) continue; // require(esm) came to Node 20 in 20.19
        const required = run(
          node20,
          ['-e', `try { require('${entry}'); console.log('loaded') } catch (e) { console.log(e.message) }`],
          project,
        );
        expect(required.stdout, entry).toBe(`${refusal}\n`);
      }
    });

    it('installing the package as a dependency is not blocked, and using it refuses clearly', () => {
      const dependent = join(work, 'dependent-on-node20');
      mkdirSync(dependent);
      expect(run('npm', ['init', '-y'], dependent).status).toBe(0);
      // No install scripts: better-sqlite3 would fetch a build for Node 20 from GitHub, out of reach in CI.
      const install = run(
        'npm',
        ['install', tarball, '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
        dependent,
      );
      expect(install.status, install.stderr).toBe(0);
      expect(install.stderr).not.toContain('EBADDEVENGINES');
      const imported = run(
        node20,
        ['-e', "import('hybrid-cache').then(() => console.log('loaded'), (e) => console.log(e.message))"],
        dependent,
      );
      expect(imported.stdout).toBe(`${refusal}\n`);
    });
  });

  it('loads the library without the daemon-only dependencies (fastify, prom-client)', () => {
    for (const dependency of ['fastify', 'prom-client']) {
      rmSync(join(project, 'node_modules', dependency), { recursive: true, force: true });
    }
    const names = json<string[]>(
      inProject(['-e', "console.log(JSON.stringify(Object.keys(require('hybrid-cache'))))"]),
    );
    expect(names.sort()).toEqual(ENTRY_POINTS['hybrid-cache']);
  });

  it('runs a cache with a durable outbox through the root with @supabase/supabase-js removed from node_modules', () => {
    rmSync(join(project, 'node_modules', '@supabase'), { recursive: true, force: true });
    const dir = join(work, 'no-supabase');
    mkdirSync(dir);
    writeFileSync(
      join(project, 'no-supabase.mjs'),
      [
        "import { createHybridCache, MemoryStorage } from 'hybrid-cache';",
        'const storage = new MemoryStorage();',
        `const cache = await createHybridCache({ storage, outbox: { path: ${JSON.stringify(join(dir, 'outbox.db'))}, durability: 'process' } });`,
        "await cache.set('thread:1', { turns: ['hi'] });",
        "const read = await cache.get('thread:1');",
        'await cache.flush({ timeoutMs: 5_000 });',
        "const stored = (await storage.getMany(['thread:1'])).get('thread:1')?.json;",
        'const closed = await cache.close({ timeoutMs: 5_000 });',
        'console.log(JSON.stringify({ read, stored, pending: closed.pending }));',
      ].join('\n'),
    );
    expect(json(inProject(['no-supabase.mjs']))).toEqual({
      read: { turns: ['hi'] },
      stored: '{"turns":["hi"]}',
      pending: 0,
    });
    expect(readdirSync(dir)).toContain('outbox.db');
    // It really is gone: the entry point that needs it cannot load.
    expect(() => inProject(['-e', "require('hybrid-cache/supabase')"])).toThrow(/@supabase\/supabase-js/);
  });
});
