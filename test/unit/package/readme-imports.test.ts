import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as conversation from '../../../src/conversation/index.js';
import * as rootEntry from '../../../src/index.js';
import * as postgres from '../../../src/postgres/index.js';
import * as supabase from '../../../src/supabase/index.js';
import * as testing from '../../../src/testing/index.js';

/** The README's examples import every name from the entry point that exports it. */

const ENTRY_POINTS: Record<string, object> = {
  'hybrid-cache': rootEntry,
  'hybrid-cache/supabase': supabase,
  'hybrid-cache/postgres': postgres,
  'hybrid-cache/conversation': conversation,
  'hybrid-cache/testing': testing,
};
const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

describe('README examples', () => {
  const imports = [...readme.matchAll(/^import \{([^}]+)\} from '(hybrid-cache[^']*)';$/gm)].map((match) => ({
    entry: match[2] as string,
    names: (match[1] as string)
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name && !name.startsWith('type ')),
  }));

  it('import from each entry point', () => {
    expect(new Set(imports.map((i) => i.entry))).toEqual(new Set(Object.keys(ENTRY_POINTS)));
  });

  it('import only names their entry point exports', () => {
    for (const { entry, names } of imports) {
      const exported = ENTRY_POINTS[entry];
      expect(exported, entry).toBeDefined();
      expect(Object.keys(exported as object), entry).toEqual(expect.arrayContaining(names));
    }
  });
});
