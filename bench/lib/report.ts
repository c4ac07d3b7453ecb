import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaseResult, Figure } from './case.js';
import { latencyChart, seriesChart } from './chart.js';
import { formatBytes, formatLatency, formatNs, formatRate, formatRatio, formatValue } from './format.js';
import type { MachineInfo } from './machine.js';
import { median } from './measure.js';
import { evaluateTargets, type TargetResult } from './targets.js';

export interface RunResults {
  mode: 'quick' | 'full';
  startedAt: string;
  durationMs: number;
  command: string;
  machine: MachineInfo;
  loadAverageEnd: number;
  /** The commit measured; files under src/ or supabase/ that differed from it. */
  source: { commit: string; srcModified: string[] };
  /** Share of all cores other processes used, sampled before the run and after each case. */
  otherCpuLoad: number[];
  postgres: { version: string; settings: Record<string, string> } | null;
  cases: CaseResult[];
}

/** The summary's figures in reading order: id, row label, and 'rate' where a figure's rate matters more than its latency. */
const HEADLINES: Array<[string, string, 'rate'?]> = [
  ['read-hit.lru-get', 'Read hit: raw lru-cache get (floor)'],
  ['read-hit.async-floor', 'Read hit: awaited async wrapper (promise floor)'],
  ['read-hit.hybrid-get', 'Read hit: hybrid-cache get'],
  ['read-hit.bento-get', 'Read hit: bentocache get (memory L1)'],
  ['write.set-seq-none', 'set, durability none'],
  ['write.set-seq-process', 'set, durability process (default)'],
  ['write.set-seq-fsync', 'set, durability fsync'],
  ['write.set-concurrent-1', 'set, 1 caller, flushing to the store', 'rate'],
  ['write.set-concurrent-16', 'set, 16 callers, flushing to the store', 'rate'],
  ['write.set-concurrent-256', 'set, 256 callers, flushing to the store', 'rate'],
  ['write.set-concurrent-16-local', 'set, 16 callers, no-op store (cache + flusher only)', 'rate'],
  ['write.set-concurrent-256-local', 'set, 256 callers, no-op store (cache + flusher only)', 'rate'],
  ['write.bento-write-through', 'Write-through set (bentocache + PostgreSQL L2)'],
  ['write.plan-upsert', "Original plan's upsert per write"],
  ['read-miss.hybrid-get', 'Read miss: hybrid-cache get (read-through)'],
  ['read-miss.plan-get', "Read miss: original plan's get (2 round trips)"],
  ['flush.batch-1', 'Flush, batch 1'],
  ['flush.batch-50', 'Flush, batch 50'],
  ['flush.batch-200', 'Flush, batch 200 (default)'],
  ['flush.batch-1000', 'Flush, batch 1000'],
  ['flush.physical-limit', 'Physical limit (one INSERT … ON CONFLICT, direct)'],
  ['conversation.turns', 'Conversation: addTurn', 'rate'],
  ['conversation.bytes-per-turn', 'Conversation: bytes to the store per turn, coalesced'],
  ['conversation.bytes-per-turn-uncoalesced', 'Conversation: bytes per turn, one write per turn'],
  ['conversation.memory-per-thread', 'Conversation: heap per 50-turn thread'],
  ['recovery.replay-100k', 'Recovery: replay 100,000 pending writes'],
  ['recovery.drain-100k', 'Recovery: replay + drain 100,000 writes to PostgreSQL'],
  ['memory.hybrid-parsed', 'Memory per entry: hybrid-cache (clean, read)'],
  ['memory.lru-raw', 'Memory per entry: raw lru-cache'],
  ['convergence.sqlite', 'Convergence, SQLite file (flush → other process serves it)'],
  ['convergence.supabase', 'Convergence, Supabase (flush → other process serves it)'],
  ['feed-cost.hit-feed-on', 'Read hit, feed on (SqliteStorage)'],
  ['feed-cost.hit-feed-off', 'Read hit, feed: false (SqliteStorage)'],
  ['feed-cost.flush-supabase-feed-on', 'Flush to Supabase, feed on', 'rate'],
  ['feed-cost.flush-supabase-feed-off', 'Flush to Supabase, feed: false', 'rate'],
  ['feed-cost.load-supabase-idle', 'Follower feed reads (RPCs) per instance, Supabase, idle', 'rate'],
  ['postgres.flush-cache', 'PostgresStorage: flush, batch 200, doorbell on', 'rate'],
  ['postgres.flush-apply', 'PostgresStorage: apply of 200 keys, 4 in flight', 'rate'],
  ['postgres.flush-limit-statement', 'PostgreSQL physical limit (one INSERT of every row)', 'rate'],
  ['postgres.flush-limit', 'PostgreSQL physical limit (200-row INSERTs, 4 in flight)', 'rate'],
  ['postgres.convergence', 'Convergence, PostgreSQL, doorbell + 100 ms poll'],
  ['postgres.convergence-doorbell-only', 'Convergence, PostgreSQL, doorbell alone (poll off)'],
  ['postgres.miss-select', 'Read miss: plain SELECT of the row (pg pool)'],
  ['postgres.miss-get-many', 'Read miss: PostgresStorage.getMany of one key'],
  ['postgres.miss-cache-get', 'Read miss: hybrid-cache get through PostgresStorage'],
];

/** bench/README.md, which the results link to from wherever they are written. */
const BENCH_README = fileURLToPath(new URL('../README.md', import.meta.url));
const MARKERS = ['<!-- bench-results:start -->', '<!-- bench-results:end -->'] as const;
const pct = (fraction: number) => `${(fraction * 100).toFixed(0)}%`;

/**
 * Writes latest.json, latest.md and latency.svg into `dir`, and the summary between the markers
 * of each README in `readmes`; returns the paths written.
 */
export function writeResults(dir: string, run: RunResults, readmes: string[]): string[] {
  const figures = new Map(run.cases.flatMap((c) => c.figures).map((f) => [f.id, f]));
  const targets = evaluateTargets(figures);
  const summary = summaryTables(figures, targets);
  const { machine: m } = run;
  const files: Record<string, string> = {
    'latest.json': `${JSON.stringify({ ...run, targets }, null, 2)}\n`,
    'latest.md': resultsMarkdown(run, summary, figures, relative(dir, BENCH_README)),
    'latency.svg': latencyChart(
      run.cases,
      `hybrid-cache latency percentiles — ${m.cpuModel}, ${m.cores} cores, Node ${m.node}, ${run.startedAt.slice(0, 10)} (${run.mode})`,
    ),
  };
  for (const f of figures.values()) {
    if (f.series) files[`${f.id}.svg`] = seriesChart(f, `${f.label} — Node ${m.node} (${run.mode})`);
  }
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  const section = [
    `Last full run: ${run.startedAt.slice(0, 16).replace('T', ' ')} UTC, \`${run.command}\` at commit ${run.source.commit}${run.source.srcModified.length ? ' (with uncommitted changes in src)' : ''}, ${(run.durationMs / 60_000).toFixed(1)} min, on ${m.cpuModel} (${m.cores} cores), ${formatBytes(m.memoryBytes)} RAM, ${m.os}, Node ${m.node}.`,
    busyNote(run),
    summary,
  ].filter(Boolean);
  const updated = readmes.filter((path) => replaceSection(path, section.join('\n\n')));
  return [...Object.keys(files).map((name) => join(dir, name)), ...updated];
}

function summaryTables(figures: Map<string, Figure>, targets: TargetResult[]): string {
  const rows = HEADLINES.flatMap(([id, label, metric]) => {
    const f = figures.get(id);
    if (!f) return [];
    const rate = f.opsPerSec !== undefined && (metric === 'rate' || !f.latencyNs);
    return `| ${label} | ${rate ? formatRate(f.opsPerSec!) : f.latencyNs ? formatLatency(f) : formatValue(f)} |`;
  });
  const status = (met: boolean | null) => (met === null ? '— not measured' : met ? '✅ met' : '❌ missed');
  return [
    ...['| Figure | Measured |', '|---|--:|', ...rows, ''],
    ...['| Target | Measured | Status |', '|---|---|---|'],
    ...targets.map((t) => `| ${t.target} | ${t.measured} | ${status(t.met)} |`),
  ].join('\n');
}

function busyNote(run: RunResults): string {
  const load = median(run.otherCpuLoad);
  return load > 0.1
    ? `> Other processes used a median ${pct(load)} of the CPU during this run: figures, tail latencies especially, are slower and noisier than on an idle machine.`
    : '';
}

function resultsMarkdown(
  run: RunResults,
  summary: string,
  figures: Map<string, Figure>,
  readme: string,
): string {
  const { machine: m, postgres: pg, otherCpuLoad: load } = run;
  const machineTable = [
    '| Machine | |',
    '|---|---|',
    `| CPU | ${m.cpuModel}, ${m.cores} cores (${m.availableParallelism} available to Node) |`,
    `| Memory | ${formatBytes(m.memoryBytes)} |`,
    `| OS | ${m.os} (${m.kernel}) |`,
    `| Node | ${m.node} (V8 ${m.v8}) |`,
    `| Code measured | commit ${run.source.commit}${run.source.srcModified.length ? `, plus uncommitted changes in ${run.source.srcModified.join(', ')}` : ''} |`,
    `| Load average (1 min) at start / end | ${m.loadAverageStart.toFixed(2)} / ${run.loadAverageEnd.toFixed(2)} |`,
    `| CPU used by other processes during the run | ${pct(Math.min(...load))} – ${pct(Math.max(...load))} (median ${pct(median(load))}) |`,
    `| PostgreSQL | ${
      pg
        ? `${pg.version.split(',')[0]}, embedded, loopback; ${Object.entries(pg.settings)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}`
        : 'not used'
    } |`,
  ];
  const blocks = [
    '# hybrid-cache benchmark results',
    `Generated by \`${run.command}\` (${run.mode} mode) on ${run.startedAt}, in ${(run.durationMs / 1000).toFixed(0)} s. Chart: [latency.svg](latency.svg). Raw figures: [latest.json](latest.json). What each case measures: [bench/README.md](${readme}#the-cases).`,
    machineTable.join('\n'),
    busyNote(run),
    pg?.settings.fsync === 'off'
      ? '> PostgreSQL runs with the test cluster settings (fsync=off, synchronous_commit=off): store-side figures are an upper bound for a durable server. The physical limit is measured on the same server, so the ratios stay fair.'
      : '',
    '## Summary',
    summary,
  ];
  for (const c of run.cases) {
    const rows = c.figures.map((f) => `| ${figureRow(f, figures).join(' | ')} |`);
    blocks.push(
      `## ${c.title}`,
      ...c.figures.filter((f) => f.series).map((f) => `![${f.label}](${f.id}.svg)`),
      c.skipped
        ? `_Skipped: ${c.skipped}_`
        : [
            '| Figure | p50 | p99 | p999 | mean | samples | rate | value | vs baseline | details |',
            `|---|${'--:|'.repeat(7)}---|---|`,
            ...rows,
          ].join('\n'),
      `_Case time: ${(c.elapsedMs / 1000).toFixed(1)} s_`,
    );
  }
  return `${blocks.filter(Boolean).join('\n\n')}\n`;
}

function figureRow(f: Figure, figures: Map<string, Figure>): string[] {
  const l = f.latencyNs;
  const latency = l
    ? [l.p50, l.p99, l.p999, l.mean].map(formatNs).concat(`${l.samples}${l.batch > 1 ? ` ×${l.batch}` : ''}`)
    : ['', '', '', '', ''];
  const details = Object.entries(f.details ?? {}).map(
    ([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(6)) : v}`,
  );
  const rate = f.opsPerSec === undefined ? '' : formatRate(f.opsPerSec);
  const value = f.value === undefined ? '' : formatValue(f);
  return [f.label, ...latency, rate, value, comparison(f, figures), details.join(', ')];
}

/** "1.35× the p50 of …": the figure against its baseline. */
function comparison(f: Figure, figures: Map<string, Figure>): string {
  const b = f.baseline ? figures.get(f.baseline) : undefined;
  if (!b) return '';
  const name = b.label.length > 60 ? `${b.label.slice(0, 59)}…` : b.label;
  if (f.latencyNs && b.latencyNs && !f.byRate)
    return `${formatRatio(f.latencyNs.p50 / b.latencyNs.p50)} the p50 of ${name}`;
  if (f.opsPerSec !== undefined && b.opsPerSec !== undefined)
    return `${formatRatio(f.opsPerSec / b.opsPerSec)} the rate of ${name}`;
  if (f.value !== undefined && b.value !== undefined) return `${formatRatio(f.value / b.value)} ${name}`;
  return '';
}

/** Replaces what stands between the markers in a README, then formats the file as `npm run format` would. */
function replaceSection(path: string, section: string): boolean {
  const text = readFileSync(path, 'utf8');
  const [start, end] = [text.indexOf(MARKERS[0]), text.indexOf(MARKERS[1])];
  if (start < 0 || end < start) return false;
  writeFileSync(path, `${text.slice(0, start)}${MARKERS[0]}\n\n${section}\n\n${text.slice(end)}`);
  try {
    execFileSync(join(import.meta.dirname, '../../node_modules/.bin/biome'), ['format', '--write', path], {
      stdio: 'ignore',
    });
  } catch {
    // cosmetic: `npm run format` fixes it too
  }
  return true;
}
