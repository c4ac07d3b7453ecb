#!/usr/bin/env node
// The mutation test's incremental file, kept in the repository (gzipped) so that a fresh clone's
// `npm run test:mutation` reuses every result whose code and covering tests are unchanged, rather
// than testing all ~5,000 mutants again (hours on 2 cores).
//   unpack: writes the incremental file StrykerJS reads, unless one is there already.
//   pack:   stores the incremental file of the last run as the new baseline.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

const BASELINE = 'test/mutation/stryker-incremental.json.gz';
const INCREMENTAL = 'reports/mutation/stryker-incremental.json';

const command = process.argv[2];
if (command === 'unpack') {
  if (existsSync(INCREMENTAL)) process.exit(0);
  if (!existsSync(BASELINE)) {
    process.stdout.write(`no mutation baseline at ${BASELINE}: every mutant will be tested\n`);
    process.exit(0);
  }
  mkdirSync(dirname(INCREMENTAL), { recursive: true });
  writeFileSync(INCREMENTAL, gunzipSync(readFileSync(BASELINE)));
  process.stdout.write(`mutation baseline unpacked to ${INCREMENTAL}\n`);
} else if (command === 'pack') {
  if (!existsSync(INCREMENTAL)) {
    process.stderr.write(`no ${INCREMENTAL} to pack: run \`npm run test:mutation\` first\n`);
    process.exit(1);
  }
  mkdirSync(dirname(BASELINE), { recursive: true });
  writeFileSync(BASELINE, gzipSync(readFileSync(INCREMENTAL), { level: 9 }));
  process.stdout.write(`${INCREMENTAL} stored as ${BASELINE}\n`);
} else {
  process.stderr.write('usage: node scripts/mutation-baseline.mjs unpack|pack\n');
  process.exit(2);
}
