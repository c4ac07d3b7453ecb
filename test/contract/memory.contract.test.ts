import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { describeStorageContract } from './storage-contract.js';

describeStorageContract('MemoryStorage', async () => ({ storage: new MemoryStorage() }));
