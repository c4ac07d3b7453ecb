/**
 * `npm run bench`: every case with its baselines, in one process, on this machine.
 *
 *   npm run bench -- [--quick] [--only=read-hit,write,…] [--no-pg] [--out=DIR]
 *
 * Writes DIR (default bench/results) /latest.json, latest.md and latency.svg; a full run into
 * bench/results also refreshes the results table in README.md and bench/README.md. Progress on stderr.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { conversation } from './cases/conversation.js';
import { flush } from './cases/flush.js';
import { memory } from './cases/memory.js';
import { readHit } from './cases/read-hit.js';
import { readMiss } from './cases/read-miss.js';
import { recovery } from './cases/recovery.js';
import { write } from './cases/write.js';
import type { BenchContext, Figure } from './lib/case.js';
import { machineInfo, otherCpuLoad, sourceRevision } from './lib/machine.js';
import { collectGarbage } from './lib/measure.js';
import { type CaseResult, writeResults } from './lib/report.js';
import { startSupabase } from './support/supabase.js';

const CASES: Array<{
  id: string;
  title: string;
  needsPg: boolean;
  run: (ctx: BenchContext) => Promise<Figure[]>;
}> = [
  { id: 'read-hit', title: 'Read hit', needsPg: false, run: readHit },
  { id: 'write', title: 'Write', needsPg: false, run: write },
  { id: 'read-miss', title: 'Read miss', needsPg: true, run: readMiss },
  { id: 'flush', title: 'Flush throughput', needsPg: true, run: flush },
  { id: 'conversation', title: 'Conversation workload', needsPg: false, run: conversation },
  { id: 'recovery', title: 'Recovery', needsPg: false, run: recovery },
  { id: 'memory', title: 'Memory', needsPg: false, run: memory },
];
/** Cases that measure against PostgreSQL when it is there, and without it otherwise. */
const USES_PG = new Set(['write', 'conversation', 'recovery']);
const RESULTS = join(import.meta.dirname, 'results');
const USAGE = `usage: npm run bench -- [--quick] [--only=${CASES.map((c) => c.id).join(',')}] [--no-pg] [--out=DIR]`;

// The heap figures and a clean heap before each measurement need global.gc.
if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
  const argv = ['--expose-gc', ...process.execArgv, import.meta.filename, ...process.argv.slice(2)];
  process.exit(spawnSync(process.execPath, argv, { stdio: 'inherit' }).status ?? 1);
}

const options = {
  quick: { type: 'boolean', default: false },
  'no-pg': { type: 'boolean', default: false },
  only: { type: 'string' },
  out: { type: 'string', default: RESULTS },
  help: { type: 'boolean', short: 'h' },
} as const;
let args: ReturnType<typeof parseArgs<{ options: typeof options }>>['values'];
try {
  args = parseArgs({ options }).values;
} catch (error) {
  console.error(`${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.error(USAGE);
  process.exit(0);
}
const only = args.only?.split(',').filter(Boolean);
const unknown = only?.filter((id) => !CASES.some((c) => c.id === id));
if (unknown?.length) {
  console.error(`unknown case ${unknown.join(', ')}\n${USAGE}`);
  process.exit(2);
}
const selected = CASES.filter((c) => !only || only.includes(c.id));
const out = resolve(args.out);

const startedAt = new Date();
const source = sourceRevision();
const log = (message: string) => {
  const seconds = ((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${seconds}s] ${message}\n`);
};
const machine = machineInfo();
const cpuSamples = [await otherCpuLoad()];
log(
  `hybrid-cache bench (${args.quick ? 'quick' : 'full'}): ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}; ` +
    `other processes use ${((cpuSamples[0] ?? 0) * 100).toFixed(0)}% CPU right now`,
);

const ctx: BenchContext = {
  quick: args.quick,
  step: () => {},
  supabase: undefined,
  tmpDir: mkdtempSync(join(tmpdir(), 'hybrid-cache-bench-')),
};
let pgUnavailable = args['no-pg'] ? 'run with --no-pg' : '';
if (!pgUnavailable && selected.some((c) => c.needsPg || USES_PG.has(c.id))) {
  log('starting embedded PostgreSQL and the test gateway…');
  try {
    ctx.supabase = await startSupabase();
  } catch (error) {
    pgUnavailable = `PostgreSQL / gateway failed to start: ${(error as Error).message.split('\n')[0]}`;
    log(pgUnavailable);
  }
}

const results: CaseResult[] = [];
try {
  for (const [index, { id, title, needsPg, run }] of selected.entries()) {
    const started = performance.now();
    const result: CaseResult = { id, title, figures: [], elapsedMs: 0 };
    ctx.step = (label) => log(`(${index + 1}/${selected.length}) ${title}: ${label}`);
    if (needsPg && !ctx.supabase) result.skipped = pgUnavailable || 'PostgreSQL unavailable';
    else {
      collectGarbage();
      try {
        result.figures = await run(ctx);
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        result.skipped = `failed: ${message.split('\n').slice(0, 3).join(' | ')}`;
        console.error(message);
        process.exitCode = 1;
      }
    }
    result.elapsedMs = performance.now() - started;
    ctx.step(
      result.skipped ?? `done in ${(result.elapsedMs / 1000).toFixed(1)} s, ${result.figures.length} figures`,
    );
    results.push(result);
    cpuSamples.push(await otherCpuLoad(250));
  }
} finally {
  await ctx.supabase?.close();
  rmSync(ctx.tmpDir, { recursive: true, force: true });
}

const fullRun = args.quick === false && !only && out === RESULTS;
const written = writeResults(
  out,
  {
    mode: args.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine,
    loadAverageEnd: loadavg()[0] ?? 0,
    source,
    otherCpuLoad: cpuSamples,
    postgres: ctx.supabase?.postgres ?? null,
    cases: results,
  },
  fullRun ? [join(import.meta.dirname, '..', 'README.md'), join(import.meta.dirname, 'README.md')] : [],
);
log(`wrote ${written.join(', ')}`);
