/**
 * `npm run bench -- [--quick] [--only=read-hit,write,…] [--no-pg] [--no-feed] [--out=DIR]`: every case with its
 * baselines, in one process, on this machine (bench/README.md). Writes DIR (default bench/results)
 * /latest.json, latest.md and latency.svg; a full run into bench/results also rewrites the results
 * tables in README.md and bench/README.md. Progress goes to stderr.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { convergence } from './cases/convergence.js';
import { conversation } from './cases/conversation.js';
import { feedCost } from './cases/feed-cost.js';
import { flush } from './cases/flush.js';
import { memory } from './cases/memory.js';
import { postgres } from './cases/postgres.js';
import { readHit } from './cases/read-hit.js';
import { readMiss } from './cases/read-miss.js';
import { recovery } from './cases/recovery.js';
import { write } from './cases/write.js';
import { type BenchContext, benchCacheDefaults, type CaseResult, type Figure } from './lib/case.js';
import { machineInfo, otherCpuLoad, sourceRevision } from './lib/machine.js';
import { collectGarbage } from './lib/measure.js';
import { writeResults } from './lib/report.js';
import { startSupabase } from './support/supabase.js';

type Case = [
  id: string,
  title: string,
  run: (ctx: BenchContext) => Promise<Figure[]>,
  pg?: 'required' | 'used',
];
const CASES: Case[] = [
  ['read-hit', 'Read hit', readHit],
  ['write', 'Write', write, 'used'],
  ['read-miss', 'Read miss', readMiss, 'required'],
  ['flush', 'Flush throughput', flush, 'required'],
  ['conversation', 'Conversation workload', conversation, 'used'],
  ['recovery', 'Recovery', recovery, 'used'],
  ['memory', 'Memory', memory],
  ['convergence', 'Change-feed convergence', convergence, 'used'],
  ['feed-cost', 'Change-feed cost', feedCost, 'used'],
  ['postgres', 'PostgresStorage (direct): flush, doorbell convergence, read miss', postgres, 'required'],
];
const RESULTS = join(import.meta.dirname, 'results');
const USAGE = `usage: npm run bench -- [--quick] [--only=${CASES.map(([id]) => id).join(',')}] [--no-pg] [--no-feed] [--out=DIR]`;

// The heap figures, and a clean heap before each measurement, need global.gc.
if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
  const argv = ['--expose-gc', ...process.execArgv, import.meta.filename, ...process.argv.slice(2)];
  process.exit(spawnSync(process.execPath, argv, { stdio: 'inherit' }).status ?? 1);
}

function options() {
  try {
    const { values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        'no-pg': { type: 'boolean', default: false },
        'no-feed': { type: 'boolean', default: false },
        only: { type: 'string', default: CASES.map(([id]) => id).join(',') },
        out: { type: 'string', default: RESULTS },
        help: { type: 'boolean', default: false },
      },
    });
    const only = values.only.split(',');
    const unknown = only.filter((id) => !CASES.some(([known]) => known === id));
    if (unknown.length > 0) throw new Error(`unknown case ${unknown.join(', ')}`);
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    return { ...values, cases: CASES.filter(([id]) => only.includes(id)), out: resolve(values.out) };
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

const args = options();
if (args['no-feed']) benchCacheDefaults.feed = false;
const startedAt = new Date();
const log = (message: string) =>
  process.stderr.write(
    `[${((Date.now() - startedAt.getTime()) / 1000).toFixed(0).padStart(4)}s] ${message}\n`,
  );
const source = sourceRevision();
const machine = machineInfo();
const otherLoad = [await otherCpuLoad()];
log(
  `hybrid-cache bench (${args.quick ? 'quick' : 'full'}): ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}; ` +
    `other processes use ${((otherLoad[0] ?? 0) * 100).toFixed(0)}% CPU right now`,
);

const ctx: BenchContext = {
  quick: args.quick,
  step: log,
  supabase: undefined,
  tmpDir: mkdtempSync(join(tmpdir(), 'hybrid-cache-bench-')),
};
let noPg = args['no-pg'] ? 'run with --no-pg' : '';
if (!noPg && args.cases.some(([, , , pg]) => pg)) {
  log('starting embedded PostgreSQL and the test gateway…');
  ctx.supabase = await startSupabase().catch((error: Error) => {
    noPg = `PostgreSQL / gateway failed to start: ${error.message.split('\n')[0]}`;
    log(noPg);
    return undefined;
  });
}

const results: CaseResult[] = [];
try {
  for (const [index, [id, title, run, pg]] of args.cases.entries()) {
    const started = performance.now();
    const result: CaseResult = { id, title, figures: [], elapsedMs: 0 };
    ctx.step = (label) => log(`(${index + 1}/${args.cases.length}) ${title}: ${label}`);
    if (pg === 'required' && !ctx.supabase) result.skipped = noPg;
    else {
      collectGarbage();
      result.figures = await run(ctx).catch((error: Error) => {
        console.error(error);
        result.skipped = `failed: ${(error.stack ?? error.message).split('\n').slice(0, 3).join(' | ')}`;
        process.exitCode = 1;
        return [];
      });
    }
    result.elapsedMs = performance.now() - started;
    ctx.step(
      result.skipped ?? `done in ${(result.elapsedMs / 1000).toFixed(1)} s, ${result.figures.length} figures`,
    );
    results.push(result);
    otherLoad.push(await otherCpuLoad(250));
  }
} finally {
  await ctx.supabase?.close();
  rmSync(ctx.tmpDir, { recursive: true, force: true });
}

const written = writeResults(
  args.out,
  {
    mode: args.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    command: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(
      ' ',
    ),
    machine,
    loadAverageEnd: loadavg()[0] ?? 0,
    source,
    otherCpuLoad: otherLoad,
    postgres: ctx.supabase?.postgres ?? null,
    cases: results,
  },
  // A full run of every case into bench/results is the reference the READMEs quote.
  !args.quick && args.cases.length === CASES.length && args.out === RESULTS
    ? [join(import.meta.dirname, '..', 'README.md'), join(import.meta.dirname, 'README.md')]
    : [],
);
log(`wrote ${written.join(', ')}`);
