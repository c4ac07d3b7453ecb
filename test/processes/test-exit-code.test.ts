import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const wrapper = fileURLToPath(new URL('../support/embedded-postgres.ts', import.meta.url));

function exitStatusAfterLoading(exitCode: number) {
  const script = `await import(${JSON.stringify(wrapper)}); process.exitCode = ${exitCode};`;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
}

// embedded-postgres's exit hook forces exit code 0, which would let a failed test run pass CI.
it('loading embedded-postgres for the test server keeps the exit code a test run sets', () => {
  const failed = exitStatusAfterLoading(1);
  expect(failed.stderr).toBe('');
  expect(failed.status).toBe(1);
  const passed = exitStatusAfterLoading(0);
  expect(passed.stderr).toBe('');
  expect(passed.status).toBe(0);
});
