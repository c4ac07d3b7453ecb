import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { SqliteStorage } from '../../src/index.js';
import { runModel } from './model.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('model-based consistency: SqliteStorage', () => {
  it('keeps read-your-writes, honest errors and store = model under faults and crashes', async () => {
    await runModel(
      {
        create: async () => {
          const dir = mkdtempSync(join(tmpdir(), 'hc-model-sqlite-'));
          dirs.push(dir);
          return new SqliteStorage({ path: join(dir, 'store.db') });
        },
      },
      { expiry: true, numRuns: 25 },
    );
  }, 300_000);
});
