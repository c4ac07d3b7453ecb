import type { Storage } from '../../storage/contract/types.js';

/** A follower's doorbell: calls `ring` when the feed may hold something new; returns the unsubscribe. */
export type FollowerDoorbell = (ring: () => void) => () => void;

/**
 * The store's doorbell for a follower that leaves `origin`'s changes out of its feed reads: a ring
 * that names `origin` announces only changes that follower would skip, so it does not ring it.
 * Rings that name another origin, or none, do.
 */
export function skippingOwnRings(
  onChange: NonNullable<Storage['onChange']>,
  origin: string,
): FollowerDoorbell {
  return (ring) =>
    onChange((rang) => {
      if (rang?.origin !== origin) ring();
    });
}
