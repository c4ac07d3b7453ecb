import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CacheEventHub } from '../../../src/cache/cache-events.js';

const logger = pino({ level: 'silent' });
const payload = { from: 'healthy', to: 'degraded', error: new Error('down') } as const;

describe('CacheEventHub', () => {
  afterEach(() => vi.restoreAllMocks());

  it('delivers an event to its listeners until they are removed, and says whether anyone listens', () => {
    const hub = new CacheEventHub(logger);
    const heard: unknown[] = [];
    const listener = (event: unknown) => heard.push(event);
    expect(hub.wants('health')).toBe(false);
    hub.on('health', listener);
    expect(hub.wants('health')).toBe(true);
    expect(hub.wants('retry')).toBe(false);
    hub.emit('health', payload);
    hub.off('health', listener);
    expect(hub.wants('health')).toBe(false);
    hub.emit('health', payload);
    expect(heard).toEqual([payload]);
  });

  it('logs a listener that throws instead of letting it reach the code that emitted', () => {
    const error = vi.spyOn(logger, 'error');
    const hub = new CacheEventHub(logger);
    const thrown = new Error('listener bug');
    hub.on('health', () => {
      throw thrown;
    });
    expect(() => hub.emit('health', payload)).not.toThrow();
    expect(error).toHaveBeenCalledWith(
      { err: thrown, event: 'health' },
      'a cache event listener threw; ignoring it',
    );
  });

  it('takes any number of listeners without a leak warning', () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const hub = new CacheEventHub(logger);
      for (let i = 0; i < 20; i++) hub.on('health', () => {});
      return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
      });
    } finally {
      setImmediate(() => process.off('warning', onWarning));
    }
  });
});
