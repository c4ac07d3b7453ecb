import { describe, expect, it } from 'vitest';
import { WRAPPER_KEY } from '../../../../src/storage/sql-functions/jsonb-text.js';
import { inlineWriteCall, writeCall } from '../../../../src/storage/sql-functions/table-functions.js';
import { appended, item, put, putWithLogFloor, tombstone } from '../../../../src/testing/writes.js';

describe('inlineWriteCall', () => {
  const batch = [
    put('a', 10, { text: 'say "hi"\\' }, 1_700_000_000_000),
    appended('b', [item(11, 'one', 'i1'), item(12, { two: [2] }, 'i2')], null, 1_700_000_000_500),
    tombstone('c', 13),
    { ...put('', 14, 'no key') },
    putWithLogFloor('d', 20, null, 15),
  ];

  it('sends what writeCall sends, each value as JSON instead of JSON text', () => {
    const inline = inlineWriteCall(batch, 'thread_id');
    const text = writeCall(batch, 'thread_id');
    expect(inline.positions).toEqual(text.positions);
    expect(inline.results.map((r) => r?.status)).toEqual(text.results.map((r) => r?.status));
    const asText = (payload: Record<string, unknown>) => {
      const { value, items, ...rest } = payload;
      const out: Record<string, unknown> = {
        ...rest,
        data: value === undefined ? null : JSON.stringify(value),
      };
      if (items) {
        delete out.data;
        out.items = (items as Array<Record<string, unknown>>).map(({ value: v, ...i }) => ({
          ...i,
          data: JSON.stringify(v),
        }));
      }
      // Fields the inline form always names, which the text form leaves out when unset.
      for (const key of ['log_floor', 'written_at_ms', 'first_version'] as const) {
        if (out[key] === null || out[key] === 0) delete out[key];
      }
      return out;
    };
    const writes = JSON.parse(inline.writes) as Record<string, unknown>[];
    const appends = JSON.parse(inline.appends) as Record<string, unknown>[];
    expect(writes.map(asText)).toEqual(text.args.p_writes);
    expect(appends.map(asText)).toEqual(text.args.p_appends);
    expect(inline.counts).toEqual([3, 1, 2]);
  });

  it('puts each value first and every field after it', () => {
    const { writes, appends } = inlineWriteCall(
      [put('k', 5, 'v'), appended('l', [item(6, 'w', 'x')])],
      'key',
    );
    expect(writes).toBe(
      '[{"value":"v","key":"k","version":5,"expires_at_ms":null,"log_floor":0,"written_at_ms":null,"first_version":null}]',
    );
    expect(appends).toMatch(/^\[\{"items":\[\{"value":"w","id":"x","version":6\}\],"key":"l","version":6,/);
  });

  it('wraps what jsonb cannot hold, as the text form does', () => {
    const { writes } = inlineWriteCall([put('k', 5, 'nul\u0000here')], 'key');
    const [payload] = JSON.parse(writes) as Array<{ value: Record<string, string> }>;
    expect(Object.keys(payload?.value ?? {})).toEqual([WRAPPER_KEY]);
  });

  it('sends empty arrays and zero counts when every write is rejected', () => {
    const call = inlineWriteCall([put('', 1, 'x')], 'key');
    expect(call).toMatchObject({ writes: '[]', appends: '[]', counts: [0, 0, 0], positions: [] });
    expect(call.results[0]?.status).toBe('rejected');
  });
});
