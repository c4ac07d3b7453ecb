import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BenchContext, Figure } from '../lib/case.js';
import type { MemoryChildArgs, MemoryChildResult } from './memory-child.js';

/** Runs the heap measurements in a fresh `node --expose-gc` process. */
export async function runMemoryChild(args: MemoryChildArgs): Promise<MemoryChildResult> {
  const child = join(import.meta.dirname, 'memory-child.ts');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', child, JSON.stringify(args)],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as MemoryChildResult;
}

/** Memory: V8 heap per entry for 100,000 keys with ~200-byte values, against raw lru-cache. */
export async function memory(ctx: BenchContext): Promise<Figure[]> {
  const entries = ctx.quick ? 20_000 : 100_000;
  ctx.step(`heap per entry, ${entries} entries, in a child process`);
  const { perEntry } = await runMemoryChild({ entries, threads: 0 });
  if (!perEntry) throw new Error('memory child returned no per-entry figures');
  const figure = (id: string, label: string, value: number, baseline?: string): Figure => ({
    id: `memory.${id}`,
    label,
    value,
    unit: 'bytes',
    baseline,
    details: { entries },
  });
  return [
    figure('lru-raw', 'raw lru-cache holding the parsed objects (baseline)', perEntry.lruRaw),
    figure(
      'hybrid-parsed',
      'hybrid-cache, clean entries after a read (parsed object kept, JSON dropped)',
      perEntry.hybridParsed,
      'memory.lru-raw',
    ),
    figure(
      'hybrid-clean',
      'hybrid-cache, clean entries never read since the write (JSON text kept)',
      perEntry.hybridClean,
      'memory.lru-raw',
    ),
    figure(
      'hybrid-dirty',
      'hybrid-cache, dirty entries (written, not yet flushed)',
      perEntry.hybridDirty,
      'memory.lru-raw',
    ),
    figure('entry-json', 'serialized size of one value (JSON)', perEntry.entryJson),
  ];
}
