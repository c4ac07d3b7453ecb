import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isSupportedNode, MINIMUM_NODE_VERSION, unsupportedNodeMessage } from '../../../src/node-support.js';

const manifest = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  engines: { node: string };
  devEngines: { runtime: { name: string; version: string; onFail: string } };
  scripts: Record<string, string>;
};

describe('the supported Node.js versions', () => {
  it.each([
    ['20.20.2', false],
    ['v20.19.0', false],
    ['22.11.9', false],
    ['21.99.0', false],
    ['22.12.0', true],
    ['v22.12.0', true],
    ['22.23.5', true],
    ['23.0.0', true],
    ['26.1.0', true],
    ['100.0.0', true],
    ['not a version', false],
  ])('%s supported: %s', (version, supported) => {
    expect(isSupportedNode(version)).toBe(supported);
    expect(unsupportedNodeMessage(version) === undefined).toBe(supported);
  });

  it('names the version found, the version needed and where to get it, in one line', () => {
    const message = unsupportedNodeMessage('20.20.2') as string;
    expect(message).toContain('this is Node.js 20.20.2');
    expect(message).toContain('Node.js 22.12 or later');
    expect(message).toContain('https://nodejs.org');
    expect(message).not.toContain('\n');
    expect(unsupportedNodeMessage()).toBeUndefined(); // the Node running this test
  });

  it('is the range package.json gives npm (engines, and devEngines that stops npm in a clone)', () => {
    const range = `>=${MINIMUM_NODE_VERSION.replace(/\.0$/, '')}`;
    expect(manifest.engines.node).toBe(range);
    expect(manifest.devEngines.runtime).toEqual({ name: 'node', version: range, onFail: 'error' });
  });

  it('is checked first by the npm scripts that load the SQLite native module', () => {
    for (const script of ['test', 'bench', 'test:mutation']) {
      expect(manifest.scripts[script], script).toMatch(/^node scripts\/require-supported-node\.mjs && /);
    }
  });
});
