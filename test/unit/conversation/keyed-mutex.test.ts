import { describe, expect, it } from 'vitest';
import { KeyedMutex } from '../../../src/conversation/keyed-mutex.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('KeyedMutex', () => {
  it('runs tasks of one key one at a time, in call order', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const task = (name: string) => async () => {
      events.push(`${name} start`);
      await tick();
      events.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([
      mutex.run('k', task('a')),
      mutex.run('k', task('b')),
      mutex.run('k', task('c')),
    ]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(events).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  });

  it('runs tasks of different keys concurrently', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const task = (name: string) => async () => {
      events.push(`${name} start`);
      await tick();
      events.push(`${name} end`);
    };
    await Promise.all([mutex.run('x', task('x')), mutex.run('y', task('y'))]);
    expect(events.slice(0, 2)).toEqual(['x start', 'y start']);
  });

  it('keeps the queue going after a failed task and forgets idle keys', async () => {
    const mutex = new KeyedMutex();
    const failing = mutex.run('k', async () => {
      await tick();
      throw new Error('boom');
    });
    const next = mutex.run('k', async () => 'after');
    expect(mutex.activeKeys).toBe(1);
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('after');
    expect(mutex.activeKeys).toBe(0);
  });
});
