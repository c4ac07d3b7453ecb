import { describe, expect, it } from 'vitest';
import {
  MAX_RING_ORIGIN_LENGTH,
  Ringer,
  readRing,
  ringPayload,
} from '../../../../src/storage/postgres/ringer.js';

/** A ringer whose sends wait until released, recording the origin each carried. */
function ringer() {
  const sent: Array<string | undefined> = [];
  const pending: Array<() => void> = [];
  const errors: unknown[] = [];
  let fail = false;
  const r = new Ringer(
    (origin) =>
      new Promise<void>((resolve, reject) => {
        sent.push(origin);
        pending.push(() => (fail ? reject(new Error('ring failed')) : resolve()));
      }),
    (error) => errors.push(error),
  );
  /** Lets the ring on its way finish, and waits for what follows from it. */
  const answer = async () => {
    pending.shift()?.();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { r, sent, answer, errors, failNext: () => (fail = true) };
}

describe('Ringer', () => {
  it('rings at once, then once more for everything that committed while a ring was on its way', async () => {
    const { r, sent, answer } = ringer();
    r.ring('a');
    expect(sent).toEqual(['a']);
    r.ring('a');
    r.ring('a');
    expect(sent).toEqual(['a']);
    await answer();
    expect(sent).toEqual(['a', 'a']);
    await answer();
    expect(sent).toEqual(['a', 'a']);
  });

  it('names no origin for writes of several origins, or with none, behind one ring', async () => {
    const { r, sent, answer } = ringer();
    r.ring('a');
    r.ring('a');
    r.ring('b');
    await answer();
    expect(sent).toEqual(['a', undefined]);
    r.ring(undefined);
    r.ring('c');
    await answer();
    expect(sent).toEqual(['a', undefined, undefined]);
    r.ring('c');
    r.ring(undefined);
    await answer();
    expect(sent).toEqual(['a', undefined, undefined, undefined]);
  });

  it('names the origin again once the writes behind a ring all had it', async () => {
    const { r, sent, answer } = ringer();
    r.ring('x');
    r.ring('a');
    r.ring('b');
    await answer();
    r.ring('a');
    r.ring('a');
    await answer();
    await answer();
    expect(sent).toEqual(['x', undefined, 'a']);
  });

  it('drops a ring that failed, says so, and rings again for the next write', async () => {
    const { r, sent, answer, errors, failNext } = ringer();
    failNext();
    r.ring('a');
    await answer();
    expect(errors).toHaveLength(1);
    r.ring('b');
    expect(sent).toEqual(['a', 'b']);
  });

  it('rings no more once stopped, and stop waits for the ring on its way', async () => {
    const { r, sent, answer } = ringer();
    r.ring('a');
    r.ring('a');
    let stopped = false;
    const stopping = r.stop().then(() => (stopped = true));
    await Promise.resolve();
    expect(stopped).toBe(false);
    await answer();
    await stopping;
    r.ring('a');
    expect(sent).toEqual(['a']);
  });
});

describe('ring payloads', () => {
  const topic = 'public.conversation_threads';

  it('name the origin after the topic, and read back as they were sent', () => {
    expect(ringPayload(topic, undefined)).toBe(topic);
    expect(ringPayload(topic, 'cache-a')).toBe(`${topic} cache-a`);
    expect(readRing(ringPayload(topic, 'cache-a'), topic)).toEqual({ origin: 'cache-a' });
    expect(readRing(ringPayload(topic, undefined), topic)).toEqual({});
  });

  it('leave out an origin too long for a NOTIFY payload', () => {
    const long = 'x'.repeat(MAX_RING_ORIGIN_LENGTH + 1);
    expect(ringPayload(topic, long)).toBe(topic);
    const longest = 'x'.repeat(MAX_RING_ORIGIN_LENGTH);
    expect(ringPayload(topic, longest)).toBe(`${topic} ${longest}`);
  });

  it('ring every table when empty, and no other table', () => {
    expect(readRing('', topic)).toEqual({});
    expect(readRing(`${topic} `, topic)).toEqual({});
    expect(readRing(undefined, topic)).toEqual({});
    expect(readRing('public.hybrid_cache_entries', topic)).toBeUndefined();
    expect(readRing(`${topic}_x cache-a`, topic)).toBeUndefined();
    expect(readRing(`${topic}x`, topic)).toBeUndefined();
    expect(readRing(`other.${topic}`, topic)).toBeUndefined();
  });
});
