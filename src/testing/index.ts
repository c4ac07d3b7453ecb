/**
 * `hybrid-cache/testing`: what someone writing or testing against a `Storage` needs. Not loaded by
 * the package root, and free of any test runner: the runner's functions are passed in.
 */

// First, so an unsupported Node.js is refused before anything else of the package loads.
import '../require-supported-node.js';

export { describeAppendContract } from './append-contract.js';
export { FaultyStorage } from './faulty-storage.js';
export { describeFeedContract } from './feed-contract.js';
export { type ContractSetup, describeStorageContract, type TestFunctions } from './storage-contract.js';
export { appended, item, put, putWithLogFloor, tombstone } from './writes.js';
