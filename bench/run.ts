/**
 * `npm run bench` — every case of issue 7 with its baselines, in one process, on this machine.
 *
 *   npm run bench               full run (a few minutes on 2 cores)
 *   npm run bench -- --quick    smaller samples, under a minute
 *   npm run bench -- --only=read-hit,write
 *   npm run bench -- --no-pg    skip everything that needs PostgreSQL + the test gateway
 *   npm run bench -- --out=DIR  write results somewhere else than bench/results
 *
 * Writes DIR/latest.json, DIR/latest.md and DIR/latency.svg; progress goes to stderr.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { conversation } from './cases/conversation.js';
import { flush } from './cases/flush.js';
import { memory } from './cases/memory.js';
import { readHit } from './cases/read-hit.js';
import { readMiss } from './cases/read-miss.js';
import { recovery } from './cases/recovery.js';
import { write } from './cases/write.js';
import { type BenchContext, collectGarbage } from './lib/harness.js';
import { machineInfo, otherCpuLoad, sourceRevision } from './lib/machine.js';
import { Progress } from './lib/progress.js';
import { writeReports } from './lib/report.js';
import type { CaseId, CaseReport } from './lib/results.js';
import { startPgEnv } from './support/pg-env.js';

const here = dirname(fileURLToPath(import.meta.url));

interface CaseDefinition {
  id: CaseId;
  title: string;
  needsPg: boolean;
  run: (ctx: BenchContext) => Promise<Omit<CaseReport, 'elapsedMs'>>;
}

const CASES: CaseDefinition[] = [
  { id: 'read-hit', title: 'Read hit', needsPg: false, run: readHit },
  { id: 'write', title: 'Write', needsPg: false, run: write },
  { id: 'read-miss', title: 'Read miss', needsPg: true, run: readMiss },
  { id: 'flush', title: 'Flush throughput', needsPg: true, run: flush },
  { id: 'conversation', title: 'Conversation workload', needsPg: false, run: conversation },
  { id: 'recovery', title: 'Recovery', needsPg: false, run: recovery },
  { id: 'memory', title: 'Memory', needsPg: false, run: memory },
];

interface Args {
  quick: boolean;
  noPg: boolean;
  only: Set<string> | undefined;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, noPg: false, only: undefined, out: join(here, 'results') };
  for (const arg of argv) {
    if (arg === '--quick') args.quick = true;
    else if (arg === '--no-pg') args.noPg = true;
    else if (arg.startsWith('--only=')) args.only = new Set(arg.slice(7).split(',').filter(Boolean));
    else if (arg.startsWith('--out=')) args.out = resolve(arg.slice(6));
    else if (arg === '--help' || arg === '-h') {
      console.log(
        'usage: npm run bench -- [--quick] [--only=read-hit,write,read-miss,flush,conversation,recovery,memory] [--no-pg] [--out=DIR]',
      );
      process.exit(0);
    } else {
      console.error(`unknown argument ${arg} (try --help)`);
      process.exit(2);
    }
  }
  if (args.only) {
    const known = new Set<string>(CASES.map((c) => c.id));
    for (const id of args.only) {
      if (!known.has(id)) {
        console.error(`unknown case ${id}; cases: ${[...known].join(', ')}`);
        process.exit(2);
      }
    }
  }
  return args;
}

/** The bench wants `global.gc` (memory figures, and a clean heap before each measurement). */
function ensureExposeGc(): void {
  if (typeof (globalThis as { gc?: unknown }).gc === 'function') return;
  const result = spawnSync(
    process.execPath,
    ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(result.status ?? 1);
}

async function main(): Promise<void> {
  ensureExposeGc();
  const args = parseArgs(process.argv.slice(2));
  const selected = CASES.filter((c) => !args.only || args.only.has(c.id));
  const progress = new Progress(selected.length);
  const machine = machineInfo();
  const source = sourceRevision();
  const startedAt = new Date();
  const loadBefore = await otherCpuLoad();
  progress.info(
    `hybrid-cache bench (${args.quick ? 'quick' : 'full'}): ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}; ` +
      `other processes use ${(loadBefore * 100).toFixed(0)}% CPU right now`,
  );

  const tmpDir = mkdtempSync(join(tmpdir(), 'hybrid-cache-bench-'));
  const ctx: BenchContext = { quick: args.quick, progress, pg: undefined, tmpDir };
  const wantsPg =
    !args.noPg && selected.some((c) => c.needsPg || c.id === 'write' || c.id === 'conversation');
  if (args.noPg) ctx.pgUnavailable = 'run with --no-pg';
  if (wantsPg) {
    progress.info('starting embedded PostgreSQL and the test gateway…');
    try {
      ctx.pg = await startPgEnv();
    } catch (error) {
      ctx.pgUnavailable = `PostgreSQL / gateway failed to start: ${(error as Error).message.split('\n')[0]}`;
      progress.info(ctx.pgUnavailable);
    }
  }

  const reports: CaseReport[] = [];
  const cpuSamples: number[] = [loadBefore];
  try {
    for (const definition of selected) {
      progress.startCase(definition.title);
      const started = performance.now();
      if (definition.needsPg && !ctx.pg) {
        reports.push({
          id: definition.id,
          title: definition.title,
          method: '',
          figures: [],
          notes: [],
          skipped: ctx.pgUnavailable ?? 'PostgreSQL unavailable',
          elapsedMs: 0,
        });
        progress.endCase(`skipped (${ctx.pgUnavailable})`);
        continue;
      }
      collectGarbage();
      try {
        const report = await definition.run(ctx);
        reports.push({ ...report, elapsedMs: performance.now() - started });
        progress.endCase(`${report.figures.length} figures`);
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        reports.push({
          id: definition.id,
          title: definition.title,
          method: '',
          figures: [],
          notes: [],
          skipped: `failed: ${message.split('\n').slice(0, 3).join(' | ')}`,
          elapsedMs: performance.now() - started,
        });
        progress.endCase('FAILED');
        console.error(message);
      }
      cpuSamples.push(await otherCpuLoad(250));
    }
  } finally {
    await ctx.pg?.close();
    rmSync(tmpDir, { recursive: true, force: true });
  }
  machine.loadAverageEnd = (await import('node:os')).loadavg()[0] ?? 0;

  // A full run of every case into the committed results also refreshes the table in bench/README.md.
  const isReference = !args.quick && !args.only && args.out === join(here, 'results');
  const written = writeReports(
    args.out,
    {
      mode: args.quick ? 'quick' : 'full',
      startedAt: startedAt.toISOString(),
      durationMs: Date.now() - startedAt.getTime(),
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      machine,
      source,
      otherCpuLoad: cpuSamples,
      postgres: ctx.pg ? { version: ctx.pg.info.serverVersion, settings: ctx.pg.info.settings } : null,
      cases: reports,
    },
    isReference ? join(here, 'README.md') : undefined,
  );
  progress.info(`wrote ${written.join(', ')}`);
  if (reports.some((r) => r.skipped?.startsWith('failed'))) process.exitCode = 1;
}

await main();
