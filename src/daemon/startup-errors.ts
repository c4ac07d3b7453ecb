import type { Config } from '../config/load-config.js';
import { causeChain, isNativeModuleFailure } from '../storage/sqlite-file/sqlite-errors.js';

/**
 * Turns the failures an operator meets at start-up into one sentence that names what to change.
 * Anything not recognised keeps its own message; the error itself is logged beside the hint.
 */

/** Why the daemon could not listen, naming the variable to change. */
export function listenFailureHint(error: unknown, config: Config): string | undefined {
  const { host, port } = config.daemon;
  switch ((error as { code?: unknown } | undefined)?.code) {
    case 'EADDRINUSE':
      return `port ${port} on ${host} is already in use: stop the process that holds it, or set DAEMON_PORT to a free port`;
    case 'EACCES':
      return `not allowed to listen on port ${port}: set DAEMON_PORT to a port above 1023, or run with the privilege to bind it`;
    case 'EADDRNOTAVAIL':
      return `DAEMON_HOST=${host} is not an address of this machine: use 127.0.0.1, or an address one of its interfaces has`;
    default:
      return undefined;
  }
}

/** Why the conversation store could not be opened, naming the file or variable to act on. */
export function openFailureHint(error: unknown, config: Config): string | undefined {
  if (isNativeModuleFailure(error)) {
    return (
      `the SQLite native module (better-sqlite3) cannot be loaded by this Node.js ${process.version} ` +
      `(${process.platform}-${process.arch}): reinstall dependencies with the Node.js that runs the daemon ` +
      '(rm -rf node_modules && npm ci), or start the daemon with the Node.js they were installed with'
    );
  }
  if (causeCodes(error).some((code) => code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED')) {
    return (
      `the outbox ${config.cache.outboxPath} is locked by another running daemon: stop it, or give each ` +
      'daemon its own CACHE_DATA_DIR (several daemons may share one store, never one outbox)'
    );
  }
  return undefined;
}

function causeCodes(error: unknown): unknown[] {
  return causeChain(error).map((e) => e.code);
}
