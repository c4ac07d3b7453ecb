export { FaultyStorage } from './faulty-storage.js';
