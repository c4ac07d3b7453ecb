import { afterAll, beforeAll, describe, it } from 'vitest';
import { MemoryStorage } from '../../src/storage/memory/memory-storage.js';
import { describeAppendContract, describeStorageContract } from '../../src/testing/index.js';

const runner = { describe, it, beforeAll, afterAll };

describeStorageContract('MemoryStorage', async () => ({ storage: new MemoryStorage() }), runner);

describeAppendContract('MemoryStorage', async () => ({ storage: new MemoryStorage() }), runner);
