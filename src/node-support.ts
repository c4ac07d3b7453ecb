/**
 * The Node.js versions hybrid-cache runs on. 22.12 is the first Node 22 that loads an ES module with
 * `require()`; older lines crash inside the SQLite native module (a segmentation fault) instead of
 * failing with an error, so every entry point asks this module first. It imports nothing, so it can
 * run before anything native is loaded. `package.json` says the same in `engines` and `devEngines`.
 */

export const MINIMUM_NODE_VERSION = '22.12.0';

function parts(version: string): number[] {
  return version
    .replace(/^v/, '')
    .split('.')
    .map((part) => Number.parseInt(part, 10));
}

/** Whether `version` (`process.versions.node` form, `v` prefix allowed) is at least the minimum. */
export function isSupportedNode(version: string): boolean {
  const found = parts(version);
  const needed = parts(MINIMUM_NODE_VERSION);
  for (let i = 0; i < needed.length; i++) {
    const have = found[i] ?? 0;
    const need = needed[i] ?? 0;
    if (Number.isNaN(have)) return false;
    if (have !== need) return have > need;
  }
  return true;
}

/** One line naming the version found, the version needed and how to get it; `undefined` when supported. */
export function unsupportedNodeMessage(version: string = process.versions.node): string | undefined {
  if (isSupportedNode(version)) return undefined;
  return (
    `hybrid-cache needs Node.js 22.12 or later, but this is Node.js ${version.replace(/^v/, '')}: ` +
    'install Node.js 22 or later (https://nodejs.org/en/download, or `nvm install 22`) and run it with that'
  );
}
