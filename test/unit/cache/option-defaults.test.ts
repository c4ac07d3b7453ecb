import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CACHE_OPTION_DEFAULTS,
  ENTRY_HEADROOM_BYTES,
  limitsTooSmallForLargestEntry,
} from '../../../src/cache/option-defaults.js';
import { resolveOptions } from '../../../src/cache/options.js';
import { MemoryStorage } from '../../../src/index.js';

const MiB = 2 ** 20;
const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

/** The library's options table: option name -> its Default cell. */
function documentedDefaults(): Map<string, string> {
  const section = readme.slice(readme.indexOf('### Options'), readme.indexOf('### API'));
  return new Map(
    section
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => {
        const [option = '', cell = ''] = line.slice(1, -1).split(' | ');
        return [option.trim().replace(/`/g, ''), cell.trim()];
      }),
  );
}

/** `10_000`, `0` (no expiry), 256 MiB, `'process'` -> the value written. */
function parseDefault(cell: string): number | string | undefined {
  const mebibytes = /^(\d+) MiB$/.exec(cell);
  if (mebibytes) return Number(mebibytes[1]) * MiB;
  const code = /^`([^`]+)`/.exec(cell)?.[1];
  if (code === undefined) return undefined;
  return /^[\d_]+$/.test(code) ? Number(code.replace(/_/g, '')) : code.replace(/^'(.*)'$/, '$1');
}

function flatten(value: object, prefix = ''): Array<[string, unknown]> {
  return Object.entries(value).flatMap(([key, inner]) =>
    typeof inner === 'object' && inner !== null
      ? flatten(inner, `${prefix}${key}.`)
      : [[`${prefix}${key}`, inner] as [string, unknown]],
  );
}

describe('cache option defaults', () => {
  it('are what createHybridCache resolves when no option is given', () => {
    const resolved = resolveOptions({
      storage: new MemoryStorage(),
      outbox: { durability: 'process', path: 'x.db' },
    });
    for (const [path, value] of flatten(CACHE_OPTION_DEFAULTS)) {
      const actual = path
        .split('.')
        .reduce<unknown>((o, key) => (o as Record<string, unknown>)[key], resolved);
      expect(actual, path).toBe(value);
    }
  });

  it("are the ones README.md's options table gives", () => {
    const documented = documentedDefaults();
    for (const [path, value] of flatten(CACHE_OPTION_DEFAULTS)) {
      expect(parseDefault(documented.get(path) ?? ''), path).toBe(value);
    }
  });

  it('README.md states the room the largest entry needs with the number the check uses', () => {
    expect(ENTRY_HEADROOM_BYTES).toBe(576);
    expect(documentedDefaults().size).toBeGreaterThan(10);
    const row = readme.split('\n').find((line) => line.startsWith('| `maxValueBytes`'));
    expect(row).toContain(`must each be at least it + ${ENTRY_HEADROOM_BYTES} (key and overhead)`);
  });
});

describe('limitsTooSmallForLargestEntry', () => {
  const limits = { maxValueBytes: 1_000, maxBytes: 1_576, maxPendingBytes: 1_576 };

  it('accepts limits with exactly the room the largest entry takes', () => {
    expect(limitsTooSmallForLargestEntry(limits)).toEqual([]);
  });

  it('names each limit one byte short of it', () => {
    expect(limitsTooSmallForLargestEntry({ ...limits, maxBytes: 1_575 })).toEqual(['maxBytes']);
    expect(limitsTooSmallForLargestEntry({ ...limits, maxPendingBytes: 1_575 })).toEqual(['maxPendingBytes']);
    expect(limitsTooSmallForLargestEntry({ ...limits, maxValueBytes: 1_001 })).toEqual([
      'maxBytes',
      'maxPendingBytes',
    ]);
  });
});
