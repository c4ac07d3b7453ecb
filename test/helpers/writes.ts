export { put, tombstone } from '../../src/testing/writes.js';
