import type { CaseReport, Figure, TargetResult } from './results.js';
import { formatBytes, formatNs, formatRate, formatRatio } from './stats.js';

/** Issue 7's targets, checked against this run's figures (reported, never asserted). */
export function evaluateTargets(cases: CaseReport[]): TargetResult[] {
  const byId = new Map<string, Figure>();
  for (const c of cases) for (const f of c.figures) byId.set(f.id, f);
  const p50 = (id: string) => byId.get(id)?.latencyNs?.p50;
  const rate = (id: string) => byId.get(id)?.opsPerSec;
  const value = (id: string) => byId.get(id)?.value;
  const results: TargetResult[] = [];

  const ratioTarget = (
    target: string,
    numerator: number | undefined,
    denominator: number | undefined,
    ok: (ratio: number) => boolean,
    describe: (ratio: number) => string,
  ) => {
    if (numerator === undefined || denominator === undefined) {
      results.push({ target, measured: 'not measured', met: null });
      return;
    }
    const ratio = numerator / denominator;
    results.push({ target, measured: describe(ratio), met: ok(ratio) });
  };

  ratioTarget(
    'Read hit within 1.5× of the awaited-async floor (p50)',
    p50('read-hit.hybrid-get'),
    p50('read-hit.async-floor'),
    (r) => r <= 1.5,
    (r) =>
      `${formatNs(p50('read-hit.hybrid-get') as number)} vs ${formatNs(p50('read-hit.async-floor') as number)}: ${formatRatio(r)}`,
  );
  ratioTarget(
    "Read hit at least 3× faster than bentocache's (p50, memory L1, serialize: false)",
    p50('read-hit.bento-get'),
    p50('read-hit.hybrid-get'),
    (r) => r >= 3,
    (r) => `bentocache ${formatNs(p50('read-hit.bento-get') as number)}: ${formatRatio(r)} slower`,
  );
  const seq = p50('write.set-seq-process');
  results.push({
    target: 'Sequential set, durability process, p50 under 30 µs',
    measured: seq === undefined ? 'not measured' : `p50 ${formatNs(seq)}`,
    met: seq === undefined ? null : seq < 30_000,
  });
  const conc = [1, 16, 256].map((n) => rate(`write.set-concurrent-${n}`));
  const local = [1, 16, 256].map((n) => rate(`write.set-concurrent-${n}-local`));
  const best = Math.max(...conc.filter((r): r is number => r !== undefined));
  const list = (rates: Array<number | undefined>) =>
    rates.map((r, i) => `${[1, 16, 256][i]}: ${r === undefined ? 'n/a' : formatRate(r)}`).join(', ');
  results.push({
    target: 'Concurrent set at least 100,000/s (the flusher runs in the same process)',
    measured: conc.every((r) => r === undefined)
      ? 'not measured'
      : `flushing to the store ${list(conc)}; no-op store ${list(local)} (callers: rate)`,
    met: conc.every((r) => r === undefined) ? null : best >= 100_000,
  });
  ratioTarget(
    'set at least 50× faster than write-through (p50, bentocache + PostgreSQL L2)',
    p50('write.bento-write-through'),
    seq,
    (r) => r >= 50,
    (r) => `write-through ${formatNs(p50('write.bento-write-through') as number)}: ${formatRatio(r)} slower`,
  );
  const flush200 = rate('flush.batch-200');
  results.push({
    target: 'Flush at batch 200 at least 20,000 writes/s',
    measured: flush200 === undefined ? 'not measured' : formatRate(flush200),
    met: flush200 === undefined ? null : flush200 >= 20_000,
  });
  ratioTarget(
    'Flush at batch 200 within 2× of the physical limit',
    rate('flush.physical-limit'),
    flush200,
    (r) => r <= 2,
    (r) => `limit ${formatRate(rate('flush.physical-limit') as number)}: flush is ${formatRatio(r)} below it`,
  );
  const replay = value('recovery.replay-100k');
  results.push({
    target: 'Replay of 100,000 pending writes under 1 s',
    measured: replay === undefined ? 'not measured' : `${replay.toFixed(0)} ms`,
    met: replay === undefined ? null : replay < 1_000,
  });
  ratioTarget(
    'Memory per entry within 2× of raw lru-cache',
    value('memory.hybrid-parsed'),
    value('memory.lru-raw'),
    (r) => r <= 2,
    (r) =>
      `${formatBytes(value('memory.hybrid-parsed') as number)} vs ${formatBytes(value('memory.lru-raw') as number)} per entry: ${formatRatio(r)}`,
  );
  return results;
}
