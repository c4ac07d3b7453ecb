import type { Logger } from 'pino';
import type { AcknowledgementQueue } from './acknowledgements.js';
import type { OutboxEnvironment } from './environment.js';
import type { LogSpace } from './log-space.js';
import type { LostFiles } from './lost-files.js';

/** Background work that fails (a checkpoint, deleting acknowledged rows) warns once, and says when it succeeds again. */
export class MaintenanceReport {
  readonly #logger: Logger | undefined;
  readonly #path: string;
  readonly #unacknowledged: () => number;
  #failing = false;

  constructor(logger: Logger | undefined, path: string, unacknowledged: () => number) {
    this.#logger = logger;
    this.#path = path;
    this.#unacknowledged = unacknowledged;
  }

  failed(error: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#logger?.warn(
      { err: error, path: this.#path, unacknowledged: this.#unacknowledged() },
      'outbox maintenance failed (checkpoint or clearing acknowledged writes); retrying in the background',
    );
  }

  /** Something succeeded; maintenance as a whole succeeds once no acknowledged row waits either. */
  succeeded(): void {
    if (!this.#failing || this.#unacknowledged() > 0) return;
    this.#failing = false;
    this.#logger?.info({ path: this.#path }, 'outbox maintenance succeeds again');
  }
}

export interface MaintainedParts {
  lostFiles: LostFiles;
  space: LogSpace;
  acknowledgements: AcknowledgementQueue;
  /** False once the outbox is closed. */
  open(): boolean;
  /** No append is waiting and no row is pending. */
  idle(): boolean;
  /** Writes are being refused: see whether they would be accepted again. */
  probeIfRefusing(): void;
}

/**
 * The background tick: notices deleted or replaced files even with no writes, adapts the checkpoint
 * threshold to the free disk space, checkpoints what was written (emptying the log when nothing is
 * pending), which also resumes failed deletions, and probes whether a refusing outbox takes writes again.
 */
export class Maintenance {
  readonly #parts: MaintainedParts;
  readonly #stop: () => void;
  #wrote = false;

  constructor(parts: MaintainedParts, environment: OutboxEnvironment, intervalMs: number) {
    this.#parts = parts;
    this.#stop = environment.every(intervalMs, () => this.tick());
  }

  /** A write transaction committed since the last tick. */
  wrote(): void {
    this.#wrote = true;
  }

  tick(): void {
    const { lostFiles, space, acknowledgements } = this.#parts;
    if (!this.#parts.open()) return;
    const walBytes = lostFiles.checkPaths();
    if (walBytes === undefined) return;
    const wrote = this.#wrote;
    this.#wrote = false;
    space.tick(walBytes, {
      wrote,
      unacknowledged: acknowledgements.size > 0,
      idle: () => this.#parts.idle(),
    });
    this.#parts.probeIfRefusing();
  }

  stop(): void {
    this.#stop();
  }
}
