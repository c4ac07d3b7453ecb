import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RunResults } from './report.js';
import type { Figure, TargetResult } from './results.js';
import { formatBytes, formatNs, formatRate, median } from './stats.js';

type Metric = 'p50' | 'p50/p99' | 'p50/p99/p999' | 'rate' | 'value';

/** The headline figures, in reading order: [row label, figure id, what to show]. */
const KEY_FIGURES: Array<[string, string, Metric]> = [
  ['Read hit: raw lru-cache get (floor)', 'read-hit.lru-get', 'p50'],
  ['Read hit: awaited async wrapper (promise floor)', 'read-hit.async-floor', 'p50'],
  ['Read hit: hybrid-cache get', 'read-hit.hybrid-get', 'p50/p99/p999'],
  ['Read hit: bentocache get (memory L1)', 'read-hit.bento-get', 'p50/p99/p999'],
  ['set, durability none', 'write.set-seq-none', 'p50/p99/p999'],
  ['set, durability process (default)', 'write.set-seq-process', 'p50/p99/p999'],
  ['set, durability fsync', 'write.set-seq-fsync', 'p50/p99/p999'],
  ['set, 1 caller, flushing to the store', 'write.set-concurrent-1', 'rate'],
  ['set, 16 callers, flushing to the store', 'write.set-concurrent-16', 'rate'],
  ['set, 256 callers, flushing to the store', 'write.set-concurrent-256', 'rate'],
  ['set, 16 callers, no-op store (cache + flusher only)', 'write.set-concurrent-16-local', 'rate'],
  ['set, 256 callers, no-op store (cache + flusher only)', 'write.set-concurrent-256-local', 'rate'],
  ['Write-through set (bentocache + PostgreSQL L2)', 'write.bento-write-through', 'p50/p99/p999'],
  ["Original plan's upsert per write", 'write.plan-upsert', 'p50/p99/p999'],
  ['Read miss: hybrid-cache get (read-through)', 'read-miss.hybrid-get', 'p50/p99'],
  ["Read miss: original plan's get (2 round trips)", 'read-miss.plan-get', 'p50/p99'],
  ['Flush, batch 1', 'flush.batch-1', 'rate'],
  ['Flush, batch 50', 'flush.batch-50', 'rate'],
  ['Flush, batch 200 (default)', 'flush.batch-200', 'rate'],
  ['Flush, batch 1000', 'flush.batch-1000', 'rate'],
  ['Physical limit (one INSERT … ON CONFLICT, direct)', 'flush.physical-limit', 'rate'],
  ['Conversation: addTurn', 'conversation.turns', 'rate'],
  ['Conversation: bytes to the store per turn, coalesced', 'conversation.bytes-per-turn', 'value'],
  ['Conversation: bytes per turn, one write per turn', 'conversation.bytes-per-turn-uncoalesced', 'value'],
  ['Conversation: heap per 50-turn thread', 'conversation.memory-per-thread', 'value'],
  ['Recovery: replay 100,000 pending writes', 'recovery.replay-100k', 'value'],
  ['Recovery: replay + drain 100,000 writes to PostgreSQL', 'recovery.drain-100k', 'value'],
  ['Memory per entry: hybrid-cache (clean, read)', 'memory.hybrid-parsed', 'value'],
  ['Memory per entry: raw lru-cache', 'memory.lru-raw', 'value'],
];

/** A compact Markdown table of the headline figures and the targets. */
export function summaryMarkdown(run: RunResults, targets: TargetResult[]): string {
  const byId = new Map<string, Figure>();
  for (const c of run.cases) for (const f of c.figures) byId.set(f.id, f);
  const lines = ['| Figure | Measured |', '|---|--:|'];
  for (const [label, id, metric] of KEY_FIGURES) {
    const f = byId.get(id);
    if (f) lines.push(`| ${label} | ${show(f, metric)} |`);
  }
  lines.push('', '| Target (issue 7) | Measured | Status |', '|---|---|---|');
  for (const t of targets) {
    lines.push(
      `| ${t.target} | ${t.measured} | ${t.met === null ? '— not measured' : t.met ? '✅ met' : '❌ missed'} |`,
    );
  }
  return lines.join('\n');
}

function show(f: Figure, metric: Metric): string {
  const l = f.latencyNs;
  switch (metric) {
    case 'p50':
      return l ? `p50 ${formatNs(l.p50)}` : 'n/a';
    case 'p50/p99':
      return l ? `p50 ${formatNs(l.p50)} · p99 ${formatNs(l.p99)}` : 'n/a';
    case 'p50/p99/p999':
      return l ? `p50 ${formatNs(l.p50)} · p99 ${formatNs(l.p99)} · p999 ${formatNs(l.p999)}` : 'n/a';
    case 'rate':
      return f.opsPerSec === undefined ? 'n/a' : formatRate(f.opsPerSec);
    case 'value':
      if (f.value === undefined) return 'n/a';
      if (f.unit === 'bytes') return formatBytes(f.value);
      if (f.unit === 'ms') return `${f.value.toFixed(0)} ms`;
      return String(f.value);
  }
}

const START = '<!-- bench-results:start -->';
const END = '<!-- bench-results:end -->';

/** Replaces the results section of bench/README.md (between the markers) with this run's summary. */
export function updateReadme(path: string, run: RunResults, targets: TargetResult[]): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return false;
  }
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start < 0 || end < start) return false;
  const m = run.machine;
  const section = [
    START,
    '',
    `Last full run: ${run.startedAt.slice(0, 16).replace('T', ' ')} UTC, \`${run.command}\` at commit ${run.source.commit}${run.source.srcModified.length ? ' (with uncommitted changes in src)' : ''}, ${(run.durationMs / 60_000).toFixed(1)} min, on ${m.cpuModel} (${m.cores} cores), ${formatBytes(m.memoryBytes)} RAM, ${m.os}, Node ${m.node}. Full tables: [results/latest.md](results/latest.md); chart: [results/latency.svg](results/latency.svg).`,
    ...(median(run.otherCpuLoad) > 0.1
      ? [
          '',
          `> Other processes used a median ${(median(run.otherCpuLoad) * 100).toFixed(0)}% of the CPU during this run: figures are slower and noisier than on an idle machine.`,
        ]
      : []),
    '',
    summaryMarkdown(run, targets),
    '',
    END,
  ].join('\n');
  writeFileSync(path, text.slice(0, start) + section + text.slice(end + END.length));
  // The repository's formatter (Biome) also formats Markdown: leave the file as it would.
  try {
    const biome = join(dirname(path), '..', 'node_modules', '.bin', 'biome');
    execFileSync(biome, ['format', '--write', path], { stdio: 'ignore' });
  } catch {
    // Formatting is cosmetic; `npm run format` fixes it too.
  }
  return true;
}
