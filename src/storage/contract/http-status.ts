import type { StorageErrorKind } from './errors.js';

/**
 * The one mapping from an HTTP status to what the cache does with the failure. Overload and
 * timeouts (408, 429, 5xx) are retried; 401/403 mean a wrong key or missing grants, which only an
 * operator can fix; any other 4xx cannot succeed if repeated. Anything below 400 is not a failure
 * class of its own: `undefined`.
 */
export function kindForHttpStatus(status: number): StorageErrorKind | undefined {
  if (status === 408 || status === 429 || status >= 500) return 'transient';
  if (status === 401 || status === 403) return 'configuration';
  if (status >= 400) return 'permanent';
  return undefined;
}
