import { describe, expect, it } from 'vitest';
import { ClockError } from '../../../../src/index.js';
import { LOGICAL_SLOTS } from '../../../../src/storage/contract/version.js';
import { HybridLogicalClock } from '../../../../src/sync/clock/hlc.js';
import { type DistrustedReading, MAX_WALL_MS, WallClock } from '../../../../src/sync/clock/wall-clock.js';

const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;
const START = Date.UTC(2026, 11, 6);

/** A wall clock and a monotonic clock the test sets by hand. */
function readings() {
  // The monotonic clock has fractions of a millisecond, as performance.now() has.
  const at = { wall: START, monotonic: 1_000.375 };
  return {
    at,
    source: { wallMs: () => at.wall, monotonicMs: () => at.monotonic },
    /** Real time passes: both clocks move. */
    elapse(ms: number) {
      at.wall += ms;
      at.monotonic += ms;
    },
  };
}

function clockOver(maxAheadMs = HOUR) {
  const time = readings();
  const distrusted: DistrustedReading[] = [];
  const trusted: number[] = [];
  const wall = new WallClock({
    maxAheadMs,
    readings: time.source,
    onDistrust: (reading) => distrusted.push(reading),
    onTrusted: (ms) => trusted.push(ms),
  });
  return { wall, time, distrusted, trusted };
}

describe('WallClock', () => {
  it('trusts readings that follow elapsed time, or run ahead of it by less than the bound', () => {
    const { wall, time, distrusted } = clockOver();
    expect(wall.now()).toBe(START);
    time.elapse(5_000);
    expect(wall.now()).toBe(START + 5_000);
    time.at.wall += HOUR - 1; // an NTP step forward within the bound
    expect(wall.now()).toBe(time.at.wall);
    expect(distrusted).toEqual([]);
    expect(wall.aheadMs).toBe(0);
  });

  it('does not trust a reading a year ahead: it keeps to monotonic time, says so once, and trusts the clock again when it is back', () => {
    const { wall, time, distrusted, trusted } = clockOver();
    wall.now();
    time.elapse(1_000);
    time.at.wall += YEAR;
    expect(wall.now()).toBe(START + 1_000);
    time.elapse(2_000);
    expect(wall.now()).toBe(START + 3_000);
    expect(distrusted).toEqual([{ readingMs: START + 1_000 + YEAR, trustedMs: START + 1_000 }]);
    expect(wall.aheadMs).toBe(YEAR);
    expect(wall.distrustedReadings).toBe(2);

    time.at.wall -= YEAR; // set right again
    time.elapse(1_000);
    expect(wall.now()).toBe(START + 4_000);
    expect(trusted).toEqual([START + 4_000]);
    expect(wall.aheadMs).toBe(0);
  });

  it('never trusts a reading versions could not carry as safe integers (the year 2300), even as the first one', () => {
    const { wall, time, distrusted } = clockOver();
    time.at.wall = Date.UTC(2300, 0, 1);
    expect(wall.now()).toBe(0);
    wall.observeStoreTime(START);
    expect(wall.now()).toBe(START);
    expect(distrusted).toHaveLength(1);
    expect(MAX_WALL_MS * LOGICAL_SLOTS).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
  });

  it('trusts a jump the store corroborates: other instances already write at that time', () => {
    const { wall, time, distrusted } = clockOver();
    wall.now();
    time.at.wall += 2 * HOUR; // resumed after a suspend the monotonic clock did not count
    wall.observeStoreTime(time.at.wall - 1_000);
    expect(wall.now()).toBe(time.at.wall);
    expect(distrusted).toEqual([]);
  });
});

describe('WallClock at its bounds', () => {
  it('trusts a jump of exactly the bound, and not a millisecond more', () => {
    const { wall, time, distrusted } = clockOver();
    wall.now();
    time.at.wall += HOUR;
    expect(wall.now()).toBe(START + HOUR);
    time.at.wall += HOUR + 1;
    expect(wall.now()).toBe(START + HOUR);
    expect(distrusted).toEqual([{ readingMs: START + 2 * HOUR + 1, trustedMs: START + HOUR }]);
  });

  it('trusts a jump the store corroborates to exactly the bound, and not a millisecond past it', () => {
    const { wall, time, distrusted } = clockOver();
    wall.now();
    wall.observeStoreTime(START + HOUR);
    time.at.wall += 2 * HOUR;
    expect(wall.now()).toBe(START + 2 * HOUR);
    const next = clockOver();
    next.wall.now();
    next.wall.observeStoreTime(START + HOUR - 1);
    next.time.at.wall += 2 * HOUR;
    expect(next.wall.now()).toBe(START);
    expect(distrusted).toEqual([]);
    expect(next.distrusted).toHaveLength(1);
  });

  it('keeps the furthest store time seen: an older one does not undo it', () => {
    const { wall, time, distrusted } = clockOver();
    wall.now();
    wall.observeStoreTime(START + HOUR);
    wall.observeStoreTime(START - HOUR);
    time.at.wall += 2 * HOUR;
    expect(wall.now()).toBe(START + 2 * HOUR);
    expect(distrusted).toEqual([]);
  });

  it('takes no store time past what versions can carry as corroboration', () => {
    const { wall, time } = clockOver();
    wall.observeStoreTime(MAX_WALL_MS + 1);
    time.at.wall = MAX_WALL_MS + 1;
    expect(wall.now()).toBe(0);
    wall.observeStoreTime(START);
    expect(wall.now()).toBe(START);
    time.at.wall = MAX_WALL_MS;
    wall.observeStoreTime(MAX_WALL_MS);
    expect(wall.now()).toBe(MAX_WALL_MS);
  });
});

describe('HybridLogicalClock over a WallClock', () => {
  it('keeps minting increasing safe versions near real time through a jump to 2300 and back', () => {
    const { wall, time } = clockOver();
    const clock = new HybridLogicalClock(wall);
    const before = clock.next();
    time.elapse(1);
    time.at.wall = Date.UTC(2300, 0, 1);
    const during = [clock.next(), clock.next(), clock.next()];
    time.at.wall = START + 10;
    time.at.monotonic += 9;
    const after = clock.next();
    const all = [before, ...during, after];
    for (const version of all) expect(Number.isSafeInteger(version)).toBe(true);
    expect([...all].sort((a, b) => a - b)).toEqual(all);
    expect(new Set(all).size).toBe(all.length);
    expect(after).toBe((START + 10) * LOGICAL_SLOTS);
  });

  it('ignores a version seen from the store that is not a safe integer, and refuses to mint past 2^53 rather than spin', () => {
    const clock = new HybridLogicalClock({ now: () => START, observeStoreTime: () => {} });
    clock.observe(2 ** 60);
    expect(clock.next()).toBe(START * LOGICAL_SLOTS);
    clock.observe(Number.MAX_SAFE_INTEGER);
    expect(() => clock.next()).toThrow(ClockError);
    expect(() => clock.next()).toThrow(/2\^53/);
    expect(() => clock.next()).toThrow(expect.objectContaining({ code: 'ERR_CLOCK', name: 'ClockError' }));
  });
});
