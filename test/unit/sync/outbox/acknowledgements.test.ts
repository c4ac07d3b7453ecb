import { describe, expect, it } from 'vitest';
import {
  type AcknowledgementHooks,
  AcknowledgementQueue,
} from '../../../../src/sync/outbox/acknowledgements.js';
import type { AcknowledgedItem, AcknowledgedValue } from '../../../../src/sync/outbox/outbox-tables.js';
import { turns } from '../../../helpers/outbox.js';

/** Hooks that record every deletion and fail those the test asks to. */
function recordingHooks(chunk = 2) {
  const deleted: Array<{ values: AcknowledgedValue[]; items: AcknowledgedItem[] }> = [];
  const failures: boolean[] = [];
  const drains: boolean[] = [];
  let failNext = 0;
  let paused = false;
  const hooks: AcknowledgementHooks = {
    delete(values, items) {
      if (failNext > 0) {
        failNext--;
        throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      }
      deleted.push({ values: [...values], items: [...items] });
    },
    chunk: () => chunk,
    paused: () => paused,
    failed: (_error, progressed) => failures.push(progressed),
    deleted: (drained) => drains.push(drained),
  };
  return {
    hooks,
    deleted,
    failures,
    drains,
    failNextDeletions: (n: number) => {
      failNext = n;
    },
    pause: (p: boolean) => {
      paused = p;
    },
  };
}

const values = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ key: `k${from + i}`, version: from + i + 1 }));

describe('the acknowledgement queue', () => {
  it('deletes a chunk per turn of the event loop, values first, and says when it drained', async () => {
    const rec = recordingHooks(2);
    const queue = new AcknowledgementQueue(rec.hooks);
    queue.add([...values(3), { key: 'log', version: 9, items: [{ id: 'i1', version: 9, json: '""' }] }]);
    expect(rec.deleted).toEqual([]);
    await turns(1);
    expect(rec.deleted).toHaveLength(1);
    await turns(3);
    expect(rec.deleted.map((d) => [d.values.map((v) => v.key), d.items.map(([id]) => id)])).toEqual([
      [['k0', 'k1'], []],
      [['k2'], ['i1']],
    ]);
    expect(rec.drains).toEqual([false, true]);
    expect(queue.size).toBe(0);
  });

  it('keeps only the newest version acknowledged for a key, and never goes back to an older one', () => {
    const rec = recordingHooks(10);
    const queue = new AcknowledgementQueue(rec.hooks);
    queue.add([
      { key: 'a', version: 5 },
      { key: 'a', version: 3 },
    ]);
    expect(queue.deleteNow()).toBe(true);
    expect(rec.deleted[0]?.values).toEqual([{ key: 'a', version: 5 }]);
  });

  it('keeps what it could not delete; reports whether rows were deleted since the previous failure', async () => {
    const rec = recordingHooks(2);
    const queue = new AcknowledgementQueue(rec.hooks);
    queue.add(values(6));
    rec.failNextDeletions(1);
    await turns(2);
    // Failed before any progress, and stopped: a retry comes from outside (a checkpoint, the tick).
    expect(rec.failures).toEqual([false]);
    expect(rec.deleted).toEqual([]);
    expect(queue.size).toBe(6);

    queue.resume();
    await turns(1);
    expect(rec.deleted).toHaveLength(1);
    rec.failNextDeletions(2);
    await turns(2);
    expect(rec.failures).toEqual([false, true]);
    expect(queue.deleteNow(2)).toBe(false);
    expect(rec.failures).toEqual([false, true, false]);
    expect(queue.size).toBe(4);

    queue.resume();
    await turns(3);
    expect(queue.size).toBe(0);
    expect(rec.drains.at(-1)).toBe(true);
  });

  it('stops between chunks while paused (a checkpoint under way resumes it)', async () => {
    const rec = recordingHooks(2);
    const queue = new AcknowledgementQueue(rec.hooks);
    rec.pause(true);
    queue.add(values(6));
    await turns(3);
    expect(rec.deleted).toHaveLength(1);
    rec.pause(false);
    queue.resume();
    await turns(3);
    expect(rec.deleted).toHaveLength(3);
    expect(queue.size).toBe(0);
  });

  it('forgets everything when cleared, and ignores acknowledgements once stopped', async () => {
    const rec = recordingHooks(2);
    const queue = new AcknowledgementQueue(rec.hooks);
    queue.add(values(4));
    queue.clear();
    expect(queue.size).toBe(0);
    queue.stop();
    queue.add(values(4));
    expect(queue.size).toBe(0);
    expect(queue.deleteNow()).toBe(true);
    await turns(2);
    expect(rec.deleted).toEqual([]);
  });
});
