#!/usr/bin/env node
// Runs on `npm install` in a clone, on `npm install <git url>` and on `npm pack`: builds dist/ so the
// package can be imported and the daemon started without compiling at start-up. A production
// install without dev dependencies (`npm ci --omit=dev`) has no TypeScript: it keeps a dist/ built
// earlier, and says what to do when there is none.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  if (existsSync(new URL('../dist/index.js', import.meta.url))) {
    process.stdout.write('hybrid-cache: TypeScript is not installed; keeping the existing dist/\n');
    process.exit(0);
  }
  process.stderr.write(
    'hybrid-cache: dist/ is missing and TypeScript is not installed, so it cannot be built.\n' +
      'Install with dev dependencies (npm ci) to build it, or install the packed package (npm pack).\n',
  );
  process.exit(1);
}
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
  cwd: new URL('..', import.meta.url),
  stdio: 'inherit',
});
