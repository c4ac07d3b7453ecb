import { describe, expect, it } from 'vitest';
import { ClockAnchor } from '../../../../src/sync/clock/clock-anchor.js';

/**
 * An anchor whose mark the test answers when it chooses (`answer`), and whose step records the mark
 * it was given and can be made to fail; a successful step calls `anchoredNow`, as the pipeline does.
 */
function setup() {
  let reads = 0;
  const marks: number[] = [];
  let answerNext: ((mark: number) => void) | undefined;
  let failStep: Error | undefined;
  const anchor: ClockAnchor = new ClockAnchor(
    () => {
      reads++;
      return new Promise<number>((resolve) => (answerNext = resolve));
    },
    async (mark) => {
      marks.push(mark);
      if (failStep) throw failStep;
      anchor.anchoredNow();
    },
  );
  return {
    anchor,
    reads: () => reads,
    marks,
    answer: (mark: number) => {
      const answer = answerNext;
      answerNext = undefined;
      if (!answer) throw new Error('no read of the mark is waiting');
      answer(mark);
    },
    failSteps: (error: Error | undefined) => {
      failStep = error;
    },
  };
}

describe('ClockAnchor.ensure', () => {
  it('reads the mark once for concurrent callers, runs the step once with it, and is then anchored', async () => {
    const { anchor, reads, marks, answer } = setup();
    expect(anchor.anchored).toBe(false);
    const first = anchor.ensure();
    const second = anchor.ensure();
    expect(reads()).toBe(1);
    answer(77);
    await Promise.all([first, second]);
    expect(marks).toEqual([77]);
    expect(anchor.anchored).toBe(true);
    // Anchored: no further read, no further step.
    await anchor.ensure();
    expect(reads()).toBe(1);
    expect(marks).toEqual([77]);
  });

  it('passes the caller’s signal to the read of the mark', async () => {
    const signals: Array<AbortSignal | undefined> = [];
    const anchor: ClockAnchor = new ClockAnchor(
      async (signal) => {
        signals.push(signal);
        return 0;
      },
      async () => anchor.anchoredNow(),
    );
    const controller = new AbortController();
    await anchor.ensure(controller.signal);
    expect(signals).toEqual([controller.signal]);
    expect(anchor.anchored).toBe(true);
  });

  it('stays unanchored when the step fails, and the next call reads the mark again and retries', async () => {
    const { anchor, reads, marks, answer, failSteps } = setup();
    failSteps(new Error('database or disk is full (injected)'));
    const failing = anchor.ensure();
    answer(10);
    await expect(failing).rejects.toThrow('database or disk is full (injected)');
    expect(anchor.anchored).toBe(false);
    expect(anchor.isUnanchored(5)).toBe(true);

    failSteps(undefined);
    const retried = anchor.ensure();
    expect(reads()).toBe(2);
    answer(12);
    await retried;
    expect(marks).toEqual([10, 12]);
    expect(anchor.anchored).toBe(true);
  });

  it('stays unanchored when the mark cannot be read, without running the step', async () => {
    let fail = true;
    let steps = 0;
    const anchor: ClockAnchor = new ClockAnchor(
      async () => {
        if (fail) throw new Error('connection refused');
        return 3;
      },
      async () => {
        steps++;
        anchor.anchoredNow();
      },
    );
    await expect(anchor.ensure()).rejects.toThrow('connection refused');
    expect(steps).toBe(0);
    expect(anchor.anchored).toBe(false);
    fail = false;
    await anchor.ensure();
    expect(steps).toBe(1);
    expect(anchor.anchored).toBe(true);
  });

  it('is anchored only when the step says so, not when it merely resolves', async () => {
    let steps = 0;
    const anchor = new ClockAnchor(
      async () => 0,
      async () => {
        steps++;
      },
    );
    await anchor.ensure();
    expect(steps).toBe(1);
    expect(anchor.anchored).toBe(false);
    await anchor.ensure();
    expect(steps).toBe(2);
  });
});

describe('ClockAnchor: which writes are unanchored', () => {
  it('before the anchor, every version is unanchored when nothing anchored was replayed', () => {
    const { anchor } = setup();
    expect(anchor.isUnanchored(1)).toBe(true);
    expect(anchor.isUnanchored(Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  it('a replayed anchored write keeps its version: it and everything below it are anchored, the rest not', () => {
    const { anchor } = setup();
    // Replayed rows come in the order they were queued, not by version: the newest one counts.
    anchor.replayedAnchored(500);
    anchor.replayedAnchored(300);
    expect(anchor.isUnanchored(300)).toBe(false);
    expect(anchor.isUnanchored(500)).toBe(false);
    expect(anchor.isUnanchored(501)).toBe(true);
  });

  it('after the anchor, no version is unanchored, including ones minted later', async () => {
    const { anchor, answer } = setup();
    anchor.replayedAnchored(500);
    const anchoring = anchor.ensure();
    answer(0);
    await anchoring;
    expect(anchor.isUnanchored(501)).toBe(false);
    expect(anchor.isUnanchored(Number.MAX_SAFE_INTEGER)).toBe(false);
  });
});

describe('ClockAnchor.effectiveFloor', () => {
  it('reads a floor set by an unanchored write as ending every stored item, until the anchor', async () => {
    const { anchor, answer } = setup();
    anchor.replayedAnchored(100);
    // The floor's write is the version just above it.
    expect(anchor.effectiveFloor(100)).toBe(Number.POSITIVE_INFINITY);
    expect(anchor.effectiveFloor(99)).toBe(99);
    expect(anchor.effectiveFloor(40)).toBe(40);
    const anchoring = anchor.ensure();
    answer(0);
    await anchoring;
    expect(anchor.effectiveFloor(100)).toBe(100);
  });

  it('before anything anchored is known, any floor is read as ending every stored item', () => {
    const { anchor } = setup();
    expect(anchor.effectiveFloor(12)).toBe(Number.POSITIVE_INFINITY);
  });
});
