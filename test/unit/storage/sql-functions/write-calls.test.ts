import { describe, expect, it } from 'vitest';
import type { ValueWrite } from '../../../../src/storage/contract/types.js';
import { readWriteRows, writeCalls } from '../../../../src/storage/sql-functions/table-functions.js';
import { appended, item, put } from '../../../../src/testing/writes.js';

const keysOf = (rows: Record<string, unknown>[]) => rows.map((row) => row.key);

describe('writeCalls: a batch as calls of the write function', () => {
  it('is one call, values before appends, while no append precedes a value of its key', () => {
    // An append of 'b' after the value of 'b' needs no cut.
    const single = writeCalls([put('b', 2, 'v'), appended('b', [item(4, 'y')]), put('c', 5, 'w')], 'key');
    expect(single.calls).toHaveLength(1);
    expect(single.calls[0]?.positions).toEqual([0, 2, 1]);
    expect(keysOf(single.calls[0]!.args.p_writes)).toEqual(['b', 'c']);
    expect(keysOf(single.calls[0]!.args.p_appends)).toEqual(['b']);
  });

  it('cuts before a value whose key was appended to earlier in the same call', () => {
    const writes = [
      appended('a', [item(1, 'x')]),
      put('b', 2, 'v'),
      put('a', 3, 'v'),
      appended('a', [item(4, 'y')]),
      put('b', 5, 'w'),
      put('a', 6, 'z'),
    ];
    const { calls, results } = writeCalls(writes, 'thread_id');
    expect(calls.map((call) => call.positions)).toEqual([[1, 0], [2, 4, 3], [5]]);
    expect(calls[0]?.args.p_writes.map((row) => row.thread_id)).toEqual(['b']);
    expect(calls[1]?.args.p_appends.map((row) => row.thread_id)).toEqual(['a']);
    expect(results).toHaveLength(6);
  });

  it('answers writes that can never be stored without a call, and makes no empty call', () => {
    const bad: ValueWrite = { key: '', version: 1, json: '1', expiresAt: null };
    const { calls, results } = writeCalls([bad], 'key');
    expect(calls).toEqual([]);
    expect(results[0]?.status).toBe('rejected');
    const around = writeCalls([appended('a', [item(1, 'x')]), bad, put('a', 2, 'v')], 'key');
    expect(around.calls.map((call) => call.positions)).toEqual([[0], [2]]);
    expect(around.results[1]?.status).toBe('rejected');
  });

  it('fills the answers of each call at the batch positions it carries', () => {
    const writes = [appended('a', [item(1, 'x')]), put('a', 3, 'v'), put('b', 2, 'w')];
    const { calls, results } = writeCalls(writes, 'key');
    expect(calls.map((call) => call.positions)).toEqual([[0], [1, 2]]);
    const applied = { outcome: 'applied', stored_version: null };
    expect(readWriteRows(results, calls[0]!, writes, [{ idx: 0, ...applied }])).toBe(true);
    expect(
      readWriteRows(results, calls[1]!, writes, [
        { idx: 0, outcome: 'stale', stored_version: 9 },
        { idx: 1, ...applied },
      ]),
    ).toBe(true);
    expect(results).toEqual([
      { status: 'applied' },
      { status: 'stale', storedVersion: 9 },
      { status: 'applied' },
    ]);
    expect(readWriteRows(results, calls[1]!, writes, [{ idx: 0, ...applied }])).toBe(false);
  });
});
