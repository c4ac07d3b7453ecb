import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from '../lib/harness.js';
import type { CaseReport, Figure } from '../lib/results.js';
import type { MemoryChildArgs, MemoryChildResult } from './memory-child.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Runs the heap measurements in a fresh `node --expose-gc` process. */
export async function runMemoryChild(args: MemoryChildArgs): Promise<MemoryChildResult> {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(here, 'memory-child.ts'), JSON.stringify(args)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8_000);
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const line = stdout.trim().split('\n').at(-1);
  if (code !== 0 || !line) throw new Error(`memory child exited with ${code}:\n${stderr}`);
  return JSON.parse(line) as MemoryChildResult;
}

/** Memory: heap bytes per entry against raw lru-cache holding the same values. */
export async function memory(ctx: BenchContext): Promise<Omit<CaseReport, 'elapsedMs'>> {
  const entries = ctx.quick ? 20_000 : 100_000;
  ctx.progress.step(`heap per entry, ${entries} entries, in a child process`);
  const result = await runMemoryChild({ entries, threads: 0 });
  const perEntry = result.perEntry;
  if (!perEntry) throw new Error('memory child returned no per-entry figures');
  const figures: Figure[] = [
    {
      id: 'memory.lru-raw',
      case: 'memory',
      label: 'raw lru-cache holding the parsed objects (baseline)',
      value: perEntry.lruRaw,
      unit: 'bytes',
    },
    {
      id: 'memory.hybrid-parsed',
      case: 'memory',
      label: 'hybrid-cache, clean entries after a read (parsed object kept, JSON dropped)',
      value: perEntry.hybridParsed,
      unit: 'bytes',
      baseline: 'memory.lru-raw',
    },
    {
      id: 'memory.hybrid-clean',
      case: 'memory',
      label: 'hybrid-cache, clean entries never read since the write (JSON text kept)',
      value: perEntry.hybridClean,
      unit: 'bytes',
      baseline: 'memory.lru-raw',
    },
    {
      id: 'memory.hybrid-dirty',
      case: 'memory',
      label: 'hybrid-cache, dirty entries (written, not yet flushed)',
      value: perEntry.hybridDirty,
      unit: 'bytes',
      baseline: 'memory.lru-raw',
    },
    {
      id: 'memory.entry-json',
      case: 'memory',
      label: 'serialized size of one value (JSON)',
      value: result.entryJsonBytes,
      unit: 'bytes',
    },
  ];
  return {
    id: 'memory',
    title: 'Memory',
    method:
      `V8 heap used per entry (heapUsed delta after forced GC, divided by the count) for ${entries.toLocaleString('en-US')} ` +
      `keys with ~${result.entryJsonBytes}-byte values, keys and values built inside each measurement, ` +
      'in a fresh `node --expose-gc` process.',
    figures,
    notes: [
      'The target compares clean, read entries (what a cache holds in steady state) with raw lru-cache holding the same objects.',
      'A clean entry that was never read since its write keeps its JSON text instead of the object (parsing is lazy); a dirty entry keeps the JSON text until flushed.',
    ],
  };
}
