import { isSqliteCode, primaryCode } from './sqlite-codes.js';

/**
 * Runs `step` again while SQLite answers `SQLITE_BUSY` (primary code), for up to `timeoutMs`,
 * then lets the last error through. SQLite's busy timeout does not cover every lock: switching a
 * file to WAL, or opening one whose WAL another connection is recovering, can be refused at once
 * so that two connections never deadlock. Processes opening one store file together meet exactly
 * that. Synchronous, like the opening it guards: waits block the thread for at most 50 ms each.
 */
export function retryWhileBusy<T>(step: () => T, timeoutMs: number, now: () => number = Date.now): T {
  const deadline = now() + timeoutMs;
  const slot = new Int32Array(new SharedArrayBuffer(4));
  for (let waitMs = 1; ; waitMs = Math.min(waitMs * 2, 50)) {
    try {
      return step();
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      const busy = isSqliteCode(code) && primaryCode(code) === 'SQLITE_BUSY';
      if (!busy || now() >= deadline) throw error;
      Atomics.wait(slot, 0, 0, waitMs);
    }
  }
}
