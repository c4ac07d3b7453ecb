/** SQLite's write-ahead log: a 32-byte header, then one 24-byte header + one page per frame. */
const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;

/**
 * Without a file cap, the log is checkpointed (in the background) once it reaches this size. Every
 * checkpoint stalls the event loop for a moment (it syncs), so fewer is better at high write rates;
 * with durability `fsync` commits are ten times slower, so SQLite's usual 1,000 pages are enough.
 */
export const DEFAULT_CHECKPOINT_AT_BYTES = { process: 16 * 2 ** 20, fsync: 4 * 2 ** 20 } as const;

export interface WalLimits {
  /** `max_page_count` for the main file, when the outbox is capped. */
  maxPageCount: number | undefined;
  /** Most bytes the log may take, when capped: the pre-commit check checkpoints first to stay under it. */
  walBudgetBytes: number | undefined;
  /** Log size that triggers a background checkpoint; also SQLite's `journal_size_limit`. */
  checkpointAtBytes: number;
}

/**
 * Splits `maxFileBytes` between the main file and the log so that together they stay under it. A
 * transaction writes each page at most once, and the main file holds at most `maxPageCount` pages,
 * so the log's share always fits one transaction started on an empty log.
 */
export function walLimits(
  maxFileBytes: number | undefined,
  pageSize: number,
  durability: keyof typeof DEFAULT_CHECKPOINT_AT_BYTES,
): WalLimits {
  const checkpointAtBytes = DEFAULT_CHECKPOINT_AT_BYTES[durability];
  if (maxFileBytes === undefined)
    return { maxPageCount: undefined, walBudgetBytes: undefined, checkpointAtBytes };
  const maxPageCount = Math.max(
    1,
    Math.floor((maxFileBytes - WAL_HEADER_BYTES) / (pageSize + frameBytes(1, pageSize))),
  );
  const walBudgetBytes = Math.max(0, maxFileBytes - maxPageCount * pageSize);
  return {
    maxPageCount,
    walBudgetBytes,
    checkpointAtBytes: Math.min(checkpointAtBytes, Math.floor(walBudgetBytes / 2)),
  };
}

/**
 * An upper bound of the log bytes one transaction adds: each row touches a leaf (and may split it
 * into two plus a parent) and its overflow pages, never more pages than the main file can hold.
 */
export function walBytesUpperBound(
  rowBytes: readonly number[],
  pageSize: number,
  maxPageCount: number,
): number {
  let pages = 1; // the schema/header page
  for (const bytes of rowBytes) pages += 3 + Math.ceil(bytes / (pageSize - 64));
  return WAL_HEADER_BYTES + frameBytes(Math.min(pages, maxPageCount), pageSize);
}

/** Bytes `pages` frames take in the log, headers included (not the log's own header). */
export function frameBytes(pages: number, pageSize: number): number {
  return pages * (pageSize + FRAME_HEADER_BYTES);
}
