import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8');

describe('the package as users get it', () => {
  beforeAll(() => {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'pipe' });
  }, 120_000);

  it('is importable by its own name after a build, with the public API of the spec', async () => {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const m = await import('hybrid-cache'); console.log(JSON.stringify(Object.keys(m).sort()))",
      ],
      { cwd: root, encoding: 'utf8' },
    );
    const names = JSON.parse(out) as string[];
    for (const name of [
      'createHybridCache',
      'MemoryStorage',
      'SqliteStorage',
      'SupabaseStorage',
      'ValidationError',
      'BackpressureError',
      'StorageUnavailableError',
      'ClosedError',
      'ConversationStore',
    ]) {
      expect(names).toContain(name);
    }
  });

  it('README embedding example is examples/embed.ts verbatim, and it runs as written', () => {
    const example = read('examples/embed.ts');
    expect(read('README.md')).toContain(example.trim());
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/embed.ts'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(out.trim().split('\n')).toEqual(['1', '0', 'closed with 0 pending']);
  });
});
