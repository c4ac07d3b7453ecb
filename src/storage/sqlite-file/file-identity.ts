import { statSync } from 'node:fs';

/** Which file a path named when it was opened (device and inode), to notice it being deleted or replaced. */
export interface FileIdentity {
  path: string;
  dev: bigint;
  ino: bigint;
}

/** The identity and size of the file at `path` now, or undefined if there is none. */
export function identify(path: string): (FileIdentity & { size: number }) | undefined {
  const stats = statSync(path, { bigint: true, throwIfNoEntry: false });
  return stats && { path, dev: stats.dev, ino: stats.ino, size: Number(stats.size) };
}

/** True when `now` (a fresh `identify`) is the file that `then` was: not deleted, not replaced. */
export function isSameFile(then: FileIdentity, now: FileIdentity | undefined): boolean {
  return now !== undefined && now.dev === then.dev && now.ino === then.ino;
}
