import { frameBytes } from './wal-limits.js';

/** The background checkpoint threshold never drops below this, however little disk is free. */
export const MIN_CHECKPOINT_AT_BYTES = 64 * 1024;
/** Below this much free disk, each commit first checks that it leaves room to clear the backlog. */
export const LOW_DISK_BYTES = 32 * 2 ** 20;
/**
 * Acknowledged rows deleted per transaction, one transaction per turn of the event loop: clearing a
 * flushed batch of 200 at once held the loop for ~0.4 ms, which every write waiting behind it paid.
 */
export const ACK_CHUNK = 32;
/** On a nearly full disk, fewer per transaction, so that one transaction fits the room kept for it. */
export const LOW_DISK_ACK_CHUNK = 8;
/** Log pages one transaction deleting a low-disk chunk of acknowledged rows may write (leaves, parents, freelist). */
const ACK_ROOM_PAGES = 2 * LOW_DISK_ACK_CHUNK + 8;

export function isLowOnDisk(freeBytes: number): boolean {
  return freeBytes <= LOW_DISK_BYTES;
}

export function acknowledgementChunk(freeBytes: number): number {
  return isLowOnDisk(freeBytes) ? LOW_DISK_ACK_CHUNK : ACK_CHUNK;
}

/** On a small or filling disk the log is checkpointed before it can take the room the main file needs. */
export function checkpointThreshold(limitBytes: number, freeBytes: number): number {
  return Math.min(limitBytes, Math.max(MIN_CHECKPOINT_AT_BYTES, Math.floor(freeBytes / 4)));
}

/** The rows the anchoring step would rewrite (those still unanchored), as the outbox tallies them. */
export interface UnanchoredRows {
  count: number;
  /** Their keys, item ids and JSON. */
  bytes: number;
}

/**
 * Pages one rewritten row may touch besides its own bytes: its leaf, the siblings a rebalance after
 * its delete-and-reinsert moves cells between, their parent, and an item's index leaf.
 */
const ANCHOR_PAGES_PER_ROW = 4;
/** Bytes of a leaf page that hold no cell: its header and cell pointers, rounded up. */
const PAGE_HEADER_BYTES = 64;
/** Page 1 (the change counter), the freelist trunk, and a page a rebalance may add. */
const ANCHOR_SLACK_PAGES = 8;

/**
 * Pages the anchoring step's rewrite of `touchedPages` may add to the file: a rewritten row is
 * deleted and reinserted, and the rebalances that follow may need a page more than they free.
 */
export function anchorGrowthPages(touchedPages: number): number {
  return Math.ceil(touchedPages / 32) + ANCHOR_SLACK_PAGES;
}

/**
 * An upper bound of the pages the anchoring step's rewrite writes to the log: per row its pages and
 * those around it, plus its bytes (overflow pages included). One transaction logs a page once (a
 * page changed again after the page cache spilled it overwrites its frame in place), and a
 * rewritten row keeps its size (versions are 8-byte integers before and after), so it writes at most
 * every page in use, plus what its rebalances add.
 */
export function anchorRewritePages(rows: UnanchoredRows, pageSize: number, pagesInUse: number): number {
  if (rows.count === 0) return 0;
  const byRow = rows.count * ANCHOR_PAGES_PER_ROW + Math.ceil(rows.bytes / (pageSize - PAGE_HEADER_BYTES));
  const touched = Math.min(byRow, pagesInUse);
  return touched + anchorGrowthPages(touched);
}

/** Most bytes the anchoring step's rewrite adds to the log (the log's header counted as a page). */
export function anchorRewriteLogBytes(rows: UnanchoredRows, pageSize: number, pagesInUse: number): number {
  return rows.count === 0 ? 0 : frameBytes(anchorRewritePages(rows, pageSize, pagesInUse) + 1, pageSize);
}

export interface DiskRoomInputs {
  freeBytes: number;
  pageSize: number;
  /** Pages the database holds, counting those only in the log so far. */
  pageCount: number;
  mainBytes: number;
  /** Most bytes the coming transaction may add to the log. */
  logBytes: number;
  /** Rows are pending or acknowledged-but-not-deleted: room to delete them must stay free. */
  backlog: boolean;
  /** Log bytes the anchoring step's rewrite may need (`anchorRewriteLogBytes`), kept free while rows are unanchored. */
  anchorBytes: number;
}

/**
 * Whether a transaction leaves room to clear the backlog later: a checkpoint may grow the main file
 * by the pages the log holds beyond its end, deleting acknowledged rows needs log room, and so does
 * the anchoring step's rewrite of unanchored rows, which must succeed before anything is sent.
 * Without this reserve the last write fills the disk and nothing can be anchored, deleted or
 * checkpointed any more. The anchoring reserve is why a nearly full disk takes about half as many
 * writes while the clock is unanchored.
 */
export function hasDiskRoom(room: DiskRoomInputs): boolean {
  const growth = Math.max(0, room.pageCount * room.pageSize - room.mainBytes);
  const ackRoom = room.backlog ? frameBytes(ACK_ROOM_PAGES, room.pageSize) : 0;
  return room.freeBytes >= growth + room.logBytes + ackRoom + room.anchorBytes;
}

/** The log as last measured, and what limits it. */
export interface LogState {
  /** The log file's size: after a checkpoint it is reused from its start, so not always its content. */
  walBytes: number;
  /** Its size right after the last checkpoint; growing past it means the reused log filled up again. */
  walBytesAtCheckpoint: number;
  /** Size past which a commit asks for a background checkpoint. */
  thresholdBytes: number;
  /** Most bytes the log may take under `maxFileBytes`; undefined without a cap. */
  walBudgetBytes: number | undefined;
}

/** When the checkpoint question comes up. */
export type CheckpointMoment =
  /** A write transaction committed and the log was measured. */
  | { kind: 'committed' }
  /** A commit was refused; `forRoom` when for lack of room (or refused by the outbox itself). */
  | { kind: 'refused'; forRoom: boolean }
  /** Before a transaction under a cap: `logBytes` bounds what it may add to the log. */
  | { kind: 'before-commit'; logBytes: () => number }
  /** Low-disk admission found too little room for a write. */
  | { kind: 'no-disk-room' }
  /** Deleting acknowledged rows failed; `progressed` when some were deleted since the previous failure. */
  | { kind: 'deletion-failed'; full: boolean; progressed: boolean }
  /** The background tick: whether anything was written since, rows wait to be deleted, nothing is pending. */
  | { kind: 'tick'; wrote: boolean; unacknowledged: boolean; idle: () => boolean };

/**
 * `background`: soon, outside any commit (PASSIVE, the log file is kept and reused). `truncate-now`:
 * at once, folding the whole log back and emptying its file.
 */
export type Checkpoint = 'none' | 'background' | 'truncate-now';

/** The one place that decides when the log is checkpointed. */
export function checkpointFor(moment: CheckpointMoment, log: LogState): Checkpoint {
  switch (moment.kind) {
    case 'committed':
      return log.walBytes >= log.thresholdBytes && log.walBytes > log.walBytesAtCheckpoint
        ? 'background'
        : 'none';
    case 'refused':
      // On a full disk the log may hold frames a checkpoint can fold back, letting later writes reuse it.
      return moment.forRoom ? 'background' : 'none';
    case 'before-commit':
      if (log.walBudgetBytes === undefined || log.walBytes === 0) return 'none';
      return log.walBytes + moment.logBytes() > log.walBudgetBytes ? 'truncate-now' : 'none';
    case 'no-disk-room':
      // Folding the log back into the main file and emptying it may free enough (a degraded-mode cost).
      return log.walBytes > 0 ? 'truncate-now' : 'none';
    case 'deletion-failed':
      // A reused log that must grow on a full disk: a checkpoint lets the next deletions reuse it again.
      // Without progress since the last failure the retry waits for the tick, never spinning.
      return moment.full && moment.progressed ? 'background' : 'none';
    case 'tick':
      if (moment.wrote || moment.unacknowledged) return 'background';
      // Idle with nothing pending: give the log's disk space back.
      return log.walBytes > 0 && moment.idle() ? 'truncate-now' : 'none';
  }
}
