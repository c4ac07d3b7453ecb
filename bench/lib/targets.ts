import type { Figure } from './case.js';
import { formatBytes, formatNs, formatRate, formatRatio } from './format.js';

export interface TargetResult {
  target: string;
  measured: string;
  /** `null` when this run did not measure the figures the target needs. */
  met: boolean | null;
}

interface Figures {
  p50(id: string): number | undefined;
  rate(id: string): number | undefined;
  value(id: string): number | undefined;
}

/** A target: the numbers it needs, and from them what was measured and whether the target is met. */
function target<const N extends readonly (number | undefined)[]>(
  text: string,
  pick: (f: Figures) => N,
  check: (measured: { [K in keyof N]: number }, f: Figures) => [string, boolean],
) {
  return (f: Figures): TargetResult => {
    const measured = pick(f);
    if (measured.some((n) => n === undefined)) return { target: text, measured: 'not measured', met: null };
    const [description, met] = check(measured as { [K in keyof N]: number }, f);
    return { target: text, measured: description, met };
  };
}

const CALLERS = [1, 16, 256];
const rates = (f: Figures, suffix: string) =>
  CALLERS.map((n) => f.rate(`write.set-concurrent-${n}${suffix}`));
const best = (values: Array<number | undefined>) =>
  values.some((r) => r !== undefined) ? Math.max(...values.map((r) => r ?? 0)) : undefined;
const list = (values: Array<number | undefined>) =>
  values.map((r, i) => `${CALLERS[i]}: ${r === undefined ? 'n/a' : formatRate(r)}`).join(', ');

const TARGETS = [
  target(
    'Read hit within 1.5× of the awaited-async floor (p50)',
    (f) => [f.p50('read-hit.hybrid-get'), f.p50('read-hit.async-floor')],
    ([hit, floor]) => [
      `${formatNs(hit)} vs ${formatNs(floor)}: ${formatRatio(hit / floor)}`,
      hit / floor <= 1.5,
    ],
  ),
  target(
    "Read hit at least 3× faster than bentocache's (p50, memory L1, serialize: false)",
    (f) => [f.p50('read-hit.bento-get'), f.p50('read-hit.hybrid-get')],
    ([bento, hit]) => [`bentocache ${formatNs(bento)}: ${formatRatio(bento / hit)} slower`, bento / hit >= 3],
  ),
  target(
    'Sequential set, durability process, p50 under 30 µs',
    (f) => [f.p50('write.set-seq-process')],
    ([set]) => [`p50 ${formatNs(set)}`, set < 30_000],
  ),
  target(
    'Concurrent set at least 100,000/s (the flusher runs in the same process)',
    (f) => [best(rates(f, ''))],
    ([fastest], f) => [
      `flushing to the store ${list(rates(f, ''))}; no-op store ${list(rates(f, '-local'))} (callers: rate)`,
      fastest >= 100_000,
    ],
  ),
  target(
    'set at least 50× faster than write-through (p50, bentocache + PostgreSQL L2)',
    (f) => [f.p50('write.bento-write-through'), f.p50('write.set-seq-process')],
    ([through, set]) => [
      `write-through ${formatNs(through)}: ${formatRatio(through / set)} slower`,
      through / set >= 50,
    ],
  ),
  target(
    'Flush at batch 200 at least 20,000 writes/s',
    (f) => [f.rate('flush.batch-200')],
    ([flush]) => [formatRate(flush), flush >= 20_000],
  ),
  target(
    'Flush at batch 200 within 2× of the physical limit',
    (f) => [f.rate('flush.physical-limit'), f.rate('flush.batch-200')],
    ([limit, flush]) => [
      `limit ${formatRate(limit)}: flush is ${formatRatio(limit / flush)} below it`,
      limit / flush <= 2,
    ],
  ),
  target(
    'Replay of 100,000 pending writes under 1 s',
    (f) => [f.value('recovery.replay-100k')],
    ([ms]) => [`${ms.toFixed(0)} ms`, ms < 1_000],
  ),
  target(
    'Memory per entry within 2× of raw lru-cache',
    (f) => [f.value('memory.hybrid-parsed'), f.value('memory.lru-raw')],
    ([hybrid, lru]) => [
      `${formatBytes(hybrid)} vs ${formatBytes(lru)} per entry: ${formatRatio(hybrid / lru)}`,
      hybrid / lru <= 2,
    ],
  ),
];

/** This run's figures against the targets (reported, never asserted). */
export function evaluateTargets(figures: Figure[]): TargetResult[] {
  const byId = new Map(figures.map((f) => [f.id, f]));
  return TARGETS.map((check) =>
    check({
      p50: (id) => byId.get(id)?.latencyNs?.p50,
      rate: (id) => byId.get(id)?.opsPerSec,
      value: (id) => byId.get(id)?.value,
    }),
  );
}
