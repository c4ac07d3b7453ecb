import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Imports run one way. These rules read the source, so a module that imports from a layer above
 * it fails here before it can grow into a loop.
 */

const root = new URL('../../..', import.meta.url).pathname;
const src = join(root, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module specifier a file imports or re-exports, type-only ones included, in source order. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;'"]*?from\s*'([^']+)'/g)];
  const dynamic = [...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)];
  const sideEffect = [...text.matchAll(/(?:^|\n)\s*import\s*'([^']+)'/g)];
  return [...found, ...dynamic, ...sideEffect]
    .sort((a, b) => (a.index ?? 0) - (b.index ?? 0))
    .map((match) => match[1] as string);
}

/** Project-relative paths (`src/...ts`) of the project modules a file imports. */
function localImports(file: string): string[] {
  return specifiers(file)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => relative(root, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts'));
}

const files = sourceFiles(src).map((file) => ({ file: relative(root, file), imports: localImports(file) }));
const inLayer = (path: string, layer: string) => path.startsWith(`src/${layer}/`);

describe('layers', () => {
  it('finds the imports it checks', () => {
    const wire = files.find((f) => f.file === 'src/daemon/wire.ts');
    expect(wire?.imports).toContain('src/cache/create.ts');
    expect(wire?.imports).toContain('src/config/load-config.ts');
  });

  it('src/config imports only itself and the option defaults of the layers it configures', () => {
    const allowed = new Set(['src/cache/option-defaults.ts', 'src/conversation/option-defaults.ts']);
    const offending = files
      .filter((f) => inLayer(f.file, 'config'))
      .flatMap((f) =>
        f.imports
          .filter((path) => !inLayer(path, 'config') && !allowed.has(path))
          .map((path) => `${f.file} -> ${path}`),
      );
    expect(offending).toEqual([]);
  });

  it('only the daemon imports src/daemon', () => {
    const offending = files
      .filter((f) => !inLayer(f.file, 'daemon'))
      .flatMap((f) =>
        f.imports.filter((path) => inLayer(path, 'daemon')).map((path) => `${f.file} -> ${path}`),
      );
    expect(offending).toEqual([]);
  });

  it('the library (cache, sync, storage, conversation) never imports config or the daemon', () => {
    const library = ['cache', 'sync', 'storage', 'conversation'];
    const offending = files
      .filter((f) => library.some((layer) => inLayer(f.file, layer)))
      .flatMap((f) =>
        f.imports
          .filter((path) => inLayer(path, 'config') || inLayer(path, 'daemon'))
          .map((path) => `${f.file} -> ${path}`),
      );
    expect(offending).toEqual([]);
  });

  /** Imports from `from` into any of `layers`, as `file -> import` lines. */
  const importsInto = (from: string, layers: readonly string[]) =>
    files
      .filter((f) => inLayer(f.file, from))
      .flatMap((f) =>
        f.imports
          .filter((path) => layers.some((layer) => inLayer(path, layer)))
          .map((path) => `${f.file} -> ${path}`),
      );

  it('the write-behind half (src/sync) never imports the cache or anything above it', () => {
    const sync = files.find((f) => f.file === 'src/sync/flush/flusher.ts');
    expect(sync?.imports).toContain('src/storage/contract/types.ts');
    expect(importsInto('sync', ['cache', 'conversation', 'daemon', 'config', 'testing'])).toEqual([]);
  });

  it('src/storage imports no other layer', () => {
    expect(importsInto('storage', ['cache', 'sync', 'conversation', 'daemon', 'config', 'testing'])).toEqual(
      [],
    );
  });

  it('hybrid-cache/testing builds on src/storage only', () => {
    expect(importsInto('testing', ['cache', 'sync', 'conversation', 'daemon', 'config'])).toEqual([]);
  });

  /** The project modules and the packages `entry` loads, following static and dynamic imports. */
  const reachedFrom = (entry: string) => {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const absolute = join(root, file);
      for (const specifier of specifiers(absolute)) {
        if (!specifier.startsWith('.')) packages.add(specifier);
      }
      for (const path of localImports(absolute)) visit(path);
    };
    visit(entry);
    return { seen: [...seen], packages: [...packages] };
  };

  it('the package root loads neither the HTTP server, nor a remote-store client, nor the daemon, config or conversations', () => {
    const { seen, packages } = reachedFrom('src/index.ts');
    expect(seen).toContain('src/sync/outbox/sqlite-outbox.ts');
    expect(packages).toContain('better-sqlite3');
    expect(packages.filter((name) => /^(fastify|prom-client|@supabase\/|pg$|postgres$)/.test(name))).toEqual(
      [],
    );
    const layers = ['daemon', 'config', 'conversation', 'testing', 'supabase', 'postgres'];
    expect(seen.filter((path) => layers.some((layer) => inLayer(path, layer)))).toEqual([]);
    expect(seen).not.toContain('src/storage/supabase/supabase-storage.ts');
    expect(seen.filter((path) => path.startsWith('src/storage/postgres/'))).toEqual([]);
  });

  const ENTRY_POINTS = [
    'src/index.ts',
    'src/supabase/index.ts',
    'src/postgres/index.ts',
    'src/conversation/index.ts',
    'src/testing/index.ts',
  ];

  it('every entry point imports the Node.js check first, and the check imports nothing else', () => {
    for (const entry of ENTRY_POINTS) {
      const [first] = localImports(join(root, entry));
      expect(first, entry).toBe('src/require-supported-node.ts');
    }
    expect(reachedFrom('src/require-supported-node.ts')).toEqual({
      seen: ['src/require-supported-node.ts', 'src/node-support.ts'],
      packages: [],
    });
  });

  it('the daemon entry checks the Node.js version before it imports anything else, dynamically', () => {
    const text = readFileSync(join(src, 'daemon', 'main.ts'), 'utf8');
    expect(specifiers(join(src, 'daemon', 'main.ts'))).toEqual(['../node-support.js', './start.js']);
    expect(text).toMatch(/await import\('\.\/start\.js'\)/);
  });

  it('hybrid-cache-migrate checks the Node.js version before it imports the library, dynamically', () => {
    const cli = join(src, 'postgres', 'migrate-cli.ts');
    expect(specifiers(cli)).toEqual(['node:util', '../node-support.js', '../storage/postgres/migrate.js']);
    expect(readFileSync(cli, 'utf8')).toMatch(/await import\('\.\.\/storage\/postgres\/migrate\.js'\)/);
  });

  it('hybrid-cache/postgres loads pg, and neither supabase-js nor the daemon', () => {
    const { seen, packages } = reachedFrom('src/postgres/index.ts');
    expect(packages).toContain('pg');
    expect(packages.filter((name) => /^(fastify|@supabase\/)/.test(name))).toEqual([]);
    expect(
      seen.filter((path) => ['daemon', 'config', 'supabase'].some((layer) => inLayer(path, layer))),
    ).toEqual([]);
  });

  it('hybrid-cache/testing loads no test runner, and only the library imports it', () => {
    const testing = files.filter((f) => inLayer(f.file, 'testing'));
    expect(testing.map((f) => f.file)).toContain('src/testing/index.ts');
    const runners = testing.flatMap((f) =>
      specifiers(join(root, f.file)).filter((name) => /^(vitest|jest|mocha|@jest\/)/.test(name)),
    );
    expect(runners).toEqual([]);
    const importers = files
      .filter((f) => !inLayer(f.file, 'testing') && f.imports.some((path) => inLayer(path, 'testing')))
      .map((f) => f.file);
    expect(importers).toEqual([]);
  });
});
