import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FeedChange, FeedPage } from '../../../../src/storage/contract/types.js';
import { FeedFollower, type FeedResetReason } from '../../../../src/sync/feed/follower.js';

const change = (key: string, version: number): FeedChange => ({ key, version });
const page = (over: Partial<FeedPage> = {}): FeedPage => ({
  epoch: 'e1',
  cursor: 'c1',
  changes: [],
  reset: false,
  more: false,
  ...over,
});

/** A feed answering from a queue of pages (or errors), recording the cursor of each read. */
function feed(...answers: Array<FeedPage | Error | (() => Promise<FeedPage>)>) {
  const cursors: Array<string | null> = [];
  const read = async (cursor: string | null): Promise<FeedPage> => {
    cursors.push(cursor);
    const next = answers.shift() ?? page({ cursor: cursor ?? 'head' });
    if (next instanceof Error) throw next;
    return typeof next === 'function' ? next() : next;
  };
  return { read, cursors };
}

function follower(
  read: (cursor: string | null) => Promise<FeedPage>,
  over: { maxStalenessMs?: number; doorbell?: (ring: () => void) => () => void } = {},
) {
  const changed: FeedChange[][] = [];
  const resets: FeedResetReason[] = [];
  const errors: unknown[] = [];
  const f = new FeedFollower({
    read,
    pollIntervalMs: 100,
    maxStalenessMs: over.maxStalenessMs ?? 1_000,
    sink: { changed: (list) => changed.push([...list]), reset: (reason) => resets.push(reason) },
    onError: (error) => errors.push(error),
    monotonicMs: () => Date.now(),
    ...(over.doorbell ? { doorbell: over.doorbell } : {}),
  });
  return { f, changed, resets, errors };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('FeedFollower', () => {
  it('starts from the head, then reads after the cursor each page gave, handing changes on in order', async () => {
    const { read, cursors } = feed(
      page({ cursor: 'h' }),
      page({ cursor: 'c2', changes: [change('a', 5), change('b', 6)] }),
      page({ cursor: 'c3', changes: [change('a', 7)] }),
    );
    const { f, changed } = follower(read);
    expect(f.state).toBe('starting');
    expect(f.started).toBe(false);
    expect(f.lagMs).toBe(0);
    expect(await f.catchUp()).toBe(true);
    expect(f.started).toBe(true);
    await f.catchUp();
    await f.catchUp();
    expect(cursors).toEqual([null, 'h', 'c2']);
    expect(changed).toEqual([[change('a', 5), change('b', 6)], [change('a', 7)]]);
    expect(f.changesReceived).toBe(3);
  });

  it('reads page after page while the store says there is more, in one catch-up', async () => {
    const { read, cursors } = feed(
      page({ cursor: 'h' }),
      page({ cursor: 'p1', changes: [change('a', 1)], more: true }),
      page({ cursor: 'p2', changes: [change('b', 2)], more: true }),
      page({ cursor: 'p3', changes: [change('c', 3)] }),
    );
    const { f, changed } = follower(read);
    await f.catchUp();
    expect(await f.catchUp()).toBe(true);
    expect(cursors).toEqual([null, 'h', 'p1', 'p2']);
    expect(changed.flat().map((c) => c.key)).toEqual(['a', 'b', 'c']);
  });

  it('resets on a new epoch and on a pruned cursor, but not on the first page it reads', async () => {
    const { read } = feed(
      page({ epoch: 'e1', cursor: 'h', reset: true }),
      page({ epoch: 'e1', cursor: 'x', reset: true }),
      page({ epoch: 'e2', cursor: 'y', reset: true, changes: [] }),
      page({ epoch: 'e2', cursor: 'z', changes: [change('k', 9)] }),
    );
    const { f, resets, changed } = follower(read);
    await f.catchUp();
    expect(resets).toEqual([]);
    await f.catchUp();
    expect(resets).toEqual(['pruned']);
    await f.catchUp();
    expect(resets).toEqual(['pruned', 'epoch']);
    await f.catchUp();
    expect(f.resets).toBe(2);
    expect(changed).toEqual([[change('k', 9)]]);
  });

  it('vouches for maxStalenessMs from when the read that reached the end began, then no longer', async () => {
    const { read } = feed(page({ cursor: 'h' }));
    const { f } = follower(read, { maxStalenessMs: 1_000 });
    expect(f.vouched).toBe(false);
    await f.catchUp();
    expect(f.vouched).toBe(true);
    expect(f.state).toBe('following');
    vi.advanceTimersByTime(999);
    expect(f.vouched).toBe(true);
    expect(f.lagMs).toBe(999);
    vi.advanceTimersByTime(1);
    expect(f.vouched).toBe(false);
    expect(f.state).toBe('behind');
  });

  it('does not vouch after a read that took longer than the bound', async () => {
    const { read } = feed(
      page({ cursor: 'h' }),
      () =>
        new Promise<FeedPage>((resolve) => {
          setTimeout(() => resolve(page({ cursor: 'slow' })), 1_500);
        }),
    );
    const { f } = follower(read, { maxStalenessMs: 1_000 });
    await f.catchUp();
    vi.advanceTimersByTime(1_000);
    expect(f.vouched).toBe(false);
    const done = f.catchUp();
    await vi.advanceTimersByTimeAsync(1_500);
    expect(await done).toBe(true);
    expect(f.vouched).toBe(false);
    expect(f.lagMs).toBe(1_500);
  });

  it('counts a failed read, reports it, and stops vouching once the bound passes', async () => {
    const down = new Error('store down');
    const { read } = feed(page({ cursor: 'h' }), down);
    const { f, errors } = follower(read);
    await f.catchUp();
    expect(await f.catchUp()).toBe(false);
    expect(f.failures).toBe(1);
    expect(errors).toEqual([down]);
    expect(f.vouched).toBe(true);
    vi.advanceTimersByTime(1_000);
    expect(f.vouched).toBe(false);
  });

  it('shares one read among callers that ask at once', async () => {
    const { read, cursors } = feed(page({ cursor: 'h' }));
    const { f } = follower(read);
    const [a, b] = await Promise.all([f.catchUp(), f.catchUp()]);
    expect([a, b]).toEqual([true, true]);
    expect(cursors).toEqual([null]);
  });

  it('polls every interval once started, and never again once stopped', async () => {
    const { read, cursors } = feed();
    const { f } = follower(read);
    f.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(cursors).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(cursors).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(cursors).toHaveLength(3);
    f.stop();
    expect(f.vouched).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(cursors).toHaveLength(3);
    expect(await f.catchUp()).toBe(false);
    expect(cursors).toHaveLength(3);
  });

  it('arms no further poll when stopped during a read', async () => {
    let answer: (p: FeedPage) => void = () => {};
    const { f } = follower(() => new Promise<FeedPage>((resolve) => (answer = resolve)));
    f.start();
    f.stop();
    answer(page());
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('times polls start to start: a read that took part of the interval shortens the wait after it', async () => {
    const started: number[] = [];
    const read = (cursor: string | null) => {
      started.push(Date.now());
      return new Promise<FeedPage>((resolve) => {
        setTimeout(() => resolve(page({ cursor: cursor ?? 'h' })), 30);
      });
    };
    const { f } = follower(read);
    f.start();
    await vi.advanceTimersByTimeAsync(350);
    f.stop();
    const first = started[0] as number;
    expect(started.slice(0, 4)).toEqual([0, 100, 200, 300].map((at) => first + at));
  });

  it('drops a page that arrives after it was stopped', async () => {
    let answer: (p: FeedPage) => void = () => {};
    const { read } = feed(
      page({ cursor: 'h' }),
      () => new Promise<FeedPage>((resolve) => (answer = resolve)),
    );
    const { f, changed } = follower(read);
    await f.catchUp();
    const done = f.catchUp();
    f.stop();
    answer(page({ cursor: 'late', changes: [change('a', 1)] }));
    expect(await done).toBe(false);
    expect(changed).toEqual([]);
  });

  it('reads at once when rung, and coalesces rings during a read into exactly one more read', async () => {
    let answer: (p: FeedPage) => void = () => {};
    let answered = 0;
    const { read, cursors } = feed(
      page({ cursor: 'h' }),
      () => new Promise<FeedPage>((resolve) => (answer = resolve)),
      page({ cursor: 'c2', changes: [change('b', 2)] }),
    );
    const { f, changed } = follower(async (cursor) => {
      const p = await read(cursor);
      answered++;
      return p;
    });
    await f.catchUp();
    // Rung with nothing in flight: a read now, no timer involved.
    f.ring();
    expect(cursors).toEqual([null, 'h']);
    // Three rings while that read is held: one read follows it, not three, and none before it ends.
    f.ring();
    f.ring();
    f.ring();
    expect(cursors).toHaveLength(2);
    answer(page({ cursor: 'c1', changes: [change('a', 1)] }));
    await vi.waitFor(() => expect(answered).toBe(3));
    expect(cursors).toEqual([null, 'h', 'c1']);
    expect(changed).toEqual([[change('a', 1)], [change('b', 2)]]);
    // Nothing rang since: no further read until the poll would have one.
    await Promise.resolve();
    expect(cursors).toHaveLength(3);
  });

  it('subscribes to the doorbell when started and unsubscribes when stopped', async () => {
    const rings: Array<() => void> = [];
    let unsubscribed = 0;
    const { read, cursors } = feed(page({ cursor: 'h' }), page({ cursor: 'c1', changes: [change('a', 1)] }));
    const { f, changed } = follower(read, {
      maxStalenessMs: 120_000,
      doorbell: (ring) => {
        rings.push(ring);
        return () => unsubscribed++;
      },
    });
    f.start();
    expect(rings).toHaveLength(1);
    // Settles the reads without moving the clock: the poll (100 ms) stays ahead.
    await vi.advanceTimersByTimeAsync(0);
    expect(f.started).toBe(true);
    rings[0]?.();
    await vi.advanceTimersByTimeAsync(0);
    expect(changed).toEqual([[change('a', 1)]]);
    expect(cursors).toEqual([null, 'h']);
    f.stop();
    expect(unsubscribed).toBe(1);
    rings[0]?.();
    expect(cursors).toHaveLength(2);
  });
});
