import { isAppend, type VersionedWrite } from '../../storage/contract/types.js';

/**
 * What a `stale` answer means for the write it refused:
 * - `superseded`: the store holds another write that beat ours, newer or (a value) tied at our very
 *   version and winning the tie; memory's copy is wrong.
 * - `alreadyStored`: the store holds this very write; an earlier attempt committed but its answer
 *   was lost. Memory's copy is right.
 * - `unconfirmed`: a value refused at its own version (or with no version) by an adapter that does
 *   not say whether it holds this write or a different one that won a tie. Memory's copy may be
 *   wrong, so it is not kept; nothing is reported, as nothing is known to be lost.
 */
export type StaleOutcome = 'superseded' | 'alreadyStored' | 'unconfirmed';

export function staleOutcome(
  write: VersionedWrite,
  result: { storedVersion?: number; storedDiffers?: boolean },
): StaleOutcome {
  const { storedVersion, storedDiffers } = result;
  if (storedVersion !== undefined && storedVersion > write.version) return 'superseded';
  // Items are kept once by id and never tie: stale at or below their version means they are stored.
  if (isAppend(write)) return 'alreadyStored';
  if (storedDiffers === undefined) return 'unconfirmed';
  return storedDiffers ? 'superseded' : 'alreadyStored';
}
