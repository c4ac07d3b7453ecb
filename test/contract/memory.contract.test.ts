import { afterAll, beforeAll, describe, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory/memory-storage.js';
import {
  describeAppendContract,
  describeFeedContract,
  describeStorageContract,
} from '../../src/testing/index.js';
import { IgnoresOrigins } from '../support/ignores-origins.js';

const runner = { describe, it, beforeAll, afterAll };

describeStorageContract('MemoryStorage', async () => ({ storage: new MemoryStorage() }), runner);

describeAppendContract('MemoryStorage', async () => ({ storage: new MemoryStorage() }), runner);

describeFeedContract(
  'a store that ignores origins',
  async () => ({ storage: new IgnoresOrigins(), skipsOrigin: false }),
  runner,
);
