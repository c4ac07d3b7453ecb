#!/usr/bin/env node
// Runs on `npm install` in a clone, on `npm install <git url>` and on `npm pack`: builds dist/ so the
// package can be imported and the daemon started without compiling at start-up. A production
// install without dev dependencies (`npm ci --omit=dev`) has no TypeScript: it keeps a dist/ built
// earlier, and says what to do when there is none.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
try {
  require.resolve('typescript');
} catch {
  if (existsSync(new URL('../dist/index.js', import.meta.url))) {
    process.stdout.write('hybrid-cache: TypeScript is not installed; keeping the existing dist/\n');
    process.exit(0);
  }
  const dir = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(
    `hybrid-cache: dist/ is missing in ${dir} and TypeScript is not installed there, so it cannot be built.\n` +
      `Run \`npm install\` in ${dir} first (it installs the dev dependencies and builds dist/), or install\n` +
      'a packed tarball (`npm pack`) or the git URL instead of the folder.\n',
  );
  process.exit(1);
}
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  cwd: new URL('..', import.meta.url),
  stdio: 'inherit',
});
