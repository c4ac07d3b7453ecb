#!/usr/bin/env node
// Runs before the npm scripts that load the SQLite native module (test, bench, test:mutation): on a
// Node.js older than 22.12 that module crashes with a segmentation fault, so this says which Node.js
// is needed in one line and exits with code 1 instead. npm 11 already refuses through `devEngines`;
// older npm ignores that field. Plain JavaScript, since it must run where dist/ is not built yet; its
// message is src/node-support.ts's (a test holds the two to the same wording).
const version = process.versions.node;
const [major = 0, minor = 0] = version.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `hybrid-cache needs Node.js 22.12 or later, but this is Node.js ${version}: ` +
      'install Node.js 22 or later (https://nodejs.org/en/download, or `nvm install 22`) and run it with that\n',
  );
  process.exit(1);
}
