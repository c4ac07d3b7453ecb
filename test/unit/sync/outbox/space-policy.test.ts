import { describe, expect, it } from 'vitest';
import {
  ACK_CHUNK,
  acknowledgementChunk,
  anchorGrowthPages,
  anchorRewriteLogBytes,
  anchorRewritePages,
  checkpointFor,
  checkpointThreshold,
  hasDiskRoom,
  LOW_DISK_ACK_CHUNK,
  LOW_DISK_BYTES,
  type LogState,
  MIN_CHECKPOINT_AT_BYTES,
} from '../../../../src/sync/outbox/space-policy.js';
import { frameBytes } from '../../../../src/sync/outbox/wal-limits.js';

const MiB = 2 ** 20;
const log = (state: Partial<LogState> = {}): LogState => ({
  walBytes: 0,
  walBytesAtCheckpoint: 0,
  thresholdBytes: 16 * MiB,
  walBudgetBytes: undefined,
  ...state,
});
const never = () => {
  throw new Error('not needed for this decision');
};

describe('the checkpoint threshold follows free space', () => {
  it('is the configured limit while the disk has room, a quarter of the free space below that, never under 64 KiB', () => {
    expect(checkpointThreshold(16 * MiB, 1024 * MiB)).toBe(16 * MiB);
    expect(checkpointThreshold(16 * MiB, 64 * MiB)).toBe(16 * MiB);
    expect(checkpointThreshold(16 * MiB, 8 * MiB)).toBe(2 * MiB);
    expect(checkpointThreshold(16 * MiB, 1 * MiB)).toBe(256 * 1024);
    expect(checkpointThreshold(16 * MiB, 100 * 1024)).toBe(MIN_CHECKPOINT_AT_BYTES);
    expect(checkpointThreshold(16 * MiB, 0)).toBe(MIN_CHECKPOINT_AT_BYTES);
    // A capped outbox's smaller limit wins even on a large disk.
    expect(checkpointThreshold(100_000, 1024 * MiB)).toBe(100_000);
  });

  it('deletes fewer acknowledged rows per transaction on a nearly full disk', () => {
    expect(acknowledgementChunk(LOW_DISK_BYTES + 1)).toBe(ACK_CHUNK);
    expect(acknowledgementChunk(LOW_DISK_BYTES)).toBe(LOW_DISK_ACK_CHUNK);
    expect(acknowledgementChunk(0)).toBe(LOW_DISK_ACK_CHUNK);
  });
});

describe('disk room on a nearly full disk', () => {
  const pageSize = 4096;
  const reserve = frameBytes(2 * LOW_DISK_ACK_CHUNK + 8, pageSize);
  const room = { pageSize, pageCount: 10, mainBytes: 10 * pageSize, logBytes: 20_000, anchorBytes: 0 };

  it('keeps room to delete the backlog while rows are pending, none when nothing is', () => {
    expect(hasDiskRoom({ ...room, freeBytes: 20_000, backlog: false })).toBe(true);
    expect(hasDiskRoom({ ...room, freeBytes: 20_000 + reserve - 1, backlog: true })).toBe(false);
    expect(hasDiskRoom({ ...room, freeBytes: 20_000 + reserve, backlog: true })).toBe(true);
  });

  it('counts what folding the log back will grow the main file by', () => {
    const logOnlyPages = { ...room, pageCount: 14, backlog: false };
    expect(hasDiskRoom({ ...logOnlyPages, freeBytes: 20_000 + 4 * pageSize - 1 })).toBe(false);
    expect(hasDiskRoom({ ...logOnlyPages, freeBytes: 20_000 + 4 * pageSize })).toBe(true);
    // A main file larger than its pages (trimmed later) grows by nothing.
    expect(hasDiskRoom({ ...room, mainBytes: 20 * pageSize, freeBytes: 20_000, backlog: false })).toBe(true);
  });
});

describe('room for the anchoring step to rewrite the unanchored rows', () => {
  const pageSize = 4096;

  it('needs none without unanchored rows, whatever the file holds', () => {
    expect(anchorRewritePages({ count: 0, bytes: 0 }, pageSize, 1_000)).toBe(0);
    expect(anchorRewriteLogBytes({ count: 0, bytes: 0 }, pageSize, 1_000)).toBe(0);
  });

  it('bounds a few rows by their own pages and those around them, plus their bytes', () => {
    // 3 rows of 10 KB: 4 pages each around them, 8 pages of their bytes, and what rebalances add.
    const pages = 3 * 4 + Math.ceil(30_000 / (pageSize - 64));
    expect(anchorRewritePages({ count: 3, bytes: 30_000 }, pageSize, 10_000)).toBe(
      pages + anchorGrowthPages(pages),
    );
    expect(anchorGrowthPages(pages)).toBe(9);
  });

  it('never more than every page in use (each is logged once), plus what rebalances add', () => {
    const many = { count: 5_000, bytes: 5_000_000 };
    expect(anchorRewritePages(many, pageSize, 1_300)).toBe(1_300 + Math.ceil(1_300 / 32) + 8);
    // In the log: a frame per page, and the log's header.
    expect(anchorRewriteLogBytes(many, pageSize, 1_300)).toBe(frameBytes(1_300 + 41 + 8 + 1, pageSize));
  });

  it('is kept free by admission on top of the rest, and a write that fits exactly is admitted', () => {
    const writeWithBacklog = {
      pageSize,
      pageCount: 10,
      mainBytes: 10 * pageSize,
      logBytes: 20_000,
      backlog: true,
    };
    const ackRoom = frameBytes(2 * LOW_DISK_ACK_CHUNK + 8, pageSize);
    const anchorBytes = anchorRewriteLogBytes({ count: 2, bytes: 2_000 }, pageSize, 10);
    const edge = 20_000 + ackRoom + anchorBytes;
    expect(hasDiskRoom({ ...writeWithBacklog, anchorBytes, freeBytes: edge - 1 })).toBe(false);
    expect(hasDiskRoom({ ...writeWithBacklog, anchorBytes, freeBytes: edge })).toBe(true);
    // Once the rows are anchored the same free space takes more than the write.
    expect(hasDiskRoom({ ...writeWithBacklog, anchorBytes: 0, freeBytes: edge - anchorBytes })).toBe(true);
  });
});

describe('when to checkpoint', () => {
  it('after a commit: once the log passes the threshold and has outgrown the log reused since the last checkpoint', () => {
    const committed = { kind: 'committed' } as const;
    expect(checkpointFor(committed, log({ walBytes: 16 * MiB - 1 }))).toBe('none');
    expect(checkpointFor(committed, log({ walBytes: 16 * MiB }))).toBe('background');
    // Reused from its start after a checkpoint: the file is no larger than it was then.
    expect(checkpointFor(committed, log({ walBytes: 20 * MiB, walBytesAtCheckpoint: 20 * MiB }))).toBe(
      'none',
    );
    expect(checkpointFor(committed, log({ walBytes: 20 * MiB + 1, walBytesAtCheckpoint: 20 * MiB }))).toBe(
      'background',
    );
  });

  it('after a refused commit: only when it was refused for lack of room', () => {
    expect(checkpointFor({ kind: 'refused', forRoom: true }, log())).toBe('background');
    expect(checkpointFor({ kind: 'refused', forRoom: false }, log())).toBe('none');
  });

  it('before a commit under a cap: empties the log first only when the transaction might overrun its budget', () => {
    const capped = log({ walBytes: 60_000, walBudgetBytes: 100_000 });
    expect(checkpointFor({ kind: 'before-commit', logBytes: () => 40_000 }, capped)).toBe('none');
    expect(checkpointFor({ kind: 'before-commit', logBytes: () => 40_001 }, capped)).toBe('truncate-now');
    // An empty log, or no cap: the bound is not even computed.
    expect(checkpointFor({ kind: 'before-commit', logBytes: never }, log({ walBudgetBytes: 100 }))).toBe(
      'none',
    );
    expect(checkpointFor({ kind: 'before-commit', logBytes: never }, log({ walBytes: 60_000 }))).toBe('none');
  });

  it('when a write finds too little disk room: empties the log if it holds anything', () => {
    expect(checkpointFor({ kind: 'no-disk-room' }, log({ walBytes: 1 }))).toBe('truncate-now');
    expect(checkpointFor({ kind: 'no-disk-room' }, log())).toBe('none');
  });

  it('when deleting acknowledged rows fails: at once only on a full disk after some progress, so a retry never spins', () => {
    const failed = (full: boolean, progressed: boolean) =>
      checkpointFor({ kind: 'deletion-failed', full, progressed }, log());
    expect(failed(true, true)).toBe('background');
    expect(failed(true, false)).toBe('none');
    expect(failed(false, true)).toBe('none');
  });

  it('on the tick: in the background after writes or with deletions waiting; the log emptied only when idle', () => {
    const tick = (wrote: boolean, unacknowledged: boolean, idle: () => boolean, walBytes = 8192) =>
      checkpointFor({ kind: 'tick', wrote, unacknowledged, idle }, log({ walBytes }));
    expect(tick(true, false, never)).toBe('background');
    expect(tick(false, true, never)).toBe('background');
    expect(tick(false, false, () => true)).toBe('truncate-now');
    expect(tick(false, false, () => false)).toBe('none');
    expect(tick(false, false, never, 0)).toBe('none');
  });
});
