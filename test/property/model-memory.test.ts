import { describe, it } from 'vitest';
import { MemoryStorage } from '../../src/index.js';
import { runModel } from './model.js';

describe('model-based consistency: MemoryStorage', () => {
  it('keeps read-your-writes, honest errors and store = model under faults and crashes', async () => {
    await runModel({ create: async () => new MemoryStorage() }, { expiry: true, numRuns: 60 });
  }, 240_000);
});
