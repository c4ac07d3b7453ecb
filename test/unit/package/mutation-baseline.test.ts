import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = join(root, 'scripts/mutation-baseline.mjs');
const INCREMENTAL = 'reports/mutation/stryker-incremental.json';
const BASELINE = 'test/mutation/stryker-incremental.json.gz';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hc-mutation-baseline-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const run = (command: string) =>
  spawnSync(process.execPath, [script, command], { cwd: dir, encoding: 'utf8' });

describe('the mutation baseline script', () => {
  it('packs the last run and unpacks it into a fresh checkout', () => {
    const report = JSON.stringify({ files: { 'src/a.ts': { mutants: [] } } });
    mkdirSync(join(dir, 'reports/mutation'), { recursive: true });
    writeFileSync(join(dir, INCREMENTAL), report);
    expect(run('pack').status).toBe(0);
    rmSync(join(dir, 'reports'), { recursive: true });

    const unpacked = run('unpack');
    expect(unpacked.status).toBe(0);
    expect(unpacked.stdout).toContain('unpacked');
    expect(readFileSync(join(dir, INCREMENTAL), 'utf8')).toBe(report);
  });

  it('leaves the incremental file of a run in progress alone', () => {
    mkdirSync(join(dir, 'test/mutation'), { recursive: true });
    mkdirSync(join(dir, 'reports/mutation'), { recursive: true });
    writeFileSync(join(dir, INCREMENTAL), 'newer');
    execFileSync(process.execPath, [script, 'unpack'], { cwd: dir });
    expect(readFileSync(join(dir, INCREMENTAL), 'utf8')).toBe('newer');
  });

  it('says so when there is no baseline, and refuses to pack nothing', () => {
    const unpacked = run('unpack');
    expect(unpacked.status).toBe(0);
    expect(unpacked.stdout).toContain('every mutant will be tested');
    expect(existsSync(join(dir, INCREMENTAL))).toBe(false);
    const packed = run('pack');
    expect(packed.status).toBe(1);
    expect(packed.stderr).toContain('run `npm run test:mutation` first');
    expect(run('other').status).toBe(2);
  });

  it('is committed, and covers the three folders the mutation test mutates', () => {
    const report = JSON.parse(gunzipSync(readFileSync(join(root, BASELINE))).toString('utf8')) as {
      files: Record<string, unknown>;
    };
    const files = Object.keys(report.files);
    for (const folder of ['src/cache/', 'src/sync/', 'src/storage/'])
      expect(files.some((file) => file.startsWith(folder))).toBe(true);
  });
});
