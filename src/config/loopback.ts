import { isIP } from 'node:net';

/**
 * Whether binding `host` keeps the daemon reachable from this machine only. Host names other than
 * `localhost` count as non-loopback: they may resolve to anything.
 */
export function isLoopbackHost(host: string): boolean {
  const name = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (name === 'localhost') return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1' || /^::ffff:127\./.test(name);
  return false;
}
