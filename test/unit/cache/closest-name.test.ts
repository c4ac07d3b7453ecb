import { describe, expect, it } from 'vitest';
import { closestName, editDistance } from '../../../src/cache/closest-name.js';

describe('editDistance (optimal string alignment)', () => {
  it.each([
    ['', '', 0],
    ['', 'abc', 3],
    ['abc', '', 3],
    ['abc', 'abc', 0],
    ['a', 'b', 1],
    ['abc', 'axc', 1],
    ['abc', 'abxc', 1],
    ['abxc', 'abc', 1],
    ['abc', 'xabc', 1],
    ['abc', 'abcx', 1],
    ['ab', 'ba', 1],
    ['abcdef', 'abdcef', 1],
    ['abcdef', 'badcfe', 3],
    ['kitten', 'sitting', 3],
    ['flaw', 'lawn', 2],
    // Optimal string alignment edits no substring twice: 3 here, where Damerau–Levenshtein says 2.
    ['ca', 'abc', 3],
    ['ab', 'xba', 2],
  ])('%j → %j is %i', (a, b, distance) => {
    expect(editDistance(a, b)).toBe(distance);
    expect(editDistance(b, a)).toBe(distance);
  });
});

describe('closestName', () => {
  const names = ['maxEntries', 'maxBytes', 'logger', 'ttlMs'];

  it('suggests the candidate fewest edits away, ignoring case, and returns it as spelt', () => {
    expect(closestName('MAXENTRIES', names)).toBe('maxEntries');
    expect(closestName('maxentires', names)).toBe('maxEntries');
    expect(closestName('LOGER', ['Logger'])).toBe('Logger');
  });

  it('takes the first of candidates equally close', () => {
    expect(closestName('abcd', ['abce', 'abcf'])).toBe('abce');
    expect(closestName('abcd', ['abcf', 'abce'])).toBe('abcf');
  });

  it('prefers a closer candidate that comes later', () => {
    expect(closestName('abcdef', ['abcxyz', 'abcdex'])).toBe('abcdex');
  });

  it('allows one edit per three letters, and at least one', () => {
    // Two letters: one edit allowed.
    expect(closestName('ab', ['ax'])).toBe('ax');
    expect(closestName('ab', ['xy'])).toBeUndefined();
    // Five letters: still one edit.
    expect(closestName('abcde', ['abcxe'])).toBe('abcxe');
    expect(closestName('abcde', ['abxye'])).toBeUndefined();
    // Six letters: two edits, not three.
    expect(closestName('abcdef', ['abxyef'])).toBe('abxyef');
    expect(closestName('abcdef', ['axyzef'])).toBeUndefined();
  });

  it('has nothing to suggest without candidates', () => {
    expect(closestName('anything', [])).toBeUndefined();
  });
});
