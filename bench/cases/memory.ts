import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BenchContext, Figure } from '../lib/case.js';
import type { MemoryChildArgs } from './memory-child.js';

/** Runs the heap measurements in a fresh `node --expose-gc` process. */
export async function runMemoryChild(args: MemoryChildArgs): Promise<Figure[]> {
  const child = join(import.meta.dirname, 'memory-child.ts');
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', child, JSON.stringify(args)],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as Figure[];
}

/** Memory: V8 heap per entry for 100,000 keys with ~200-byte values, against raw lru-cache. */
export async function memory(ctx: BenchContext): Promise<Figure[]> {
  const entries = ctx.quick ? 20_000 : 100_000;
  ctx.step(`heap per entry, ${entries} entries, in a child process`);
  return runMemoryChild({ entries, threads: 0 });
}
