import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  /** CPUs this process may run on (cgroup / affinity), when Node can tell. */
  availableParallelism: number;
  memoryBytes: number;
  os: string;
  kernel: string;
  node: string;
  v8: string;
  /** 1-minute load average when the run started and ended. */
  loadAverageStart: number;
  loadAverageEnd?: number;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    loadAverageStart: os.loadavg()[0] ?? 0,
  };
}

function osName(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1];
    if (pretty) return pretty;
  } catch {
    // not Linux, or no os-release
  }
  return `${os.type()} ${os.release()}`;
}

/** Other processes using CPU right now (sampled over `ms`), as a fraction of all cores. */
export async function otherCpuLoad(ms = 500): Promise<number> {
  const before = systemCpu();
  const ownBefore = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = systemCpu();
  const own = process.cpuUsage(ownBefore);
  const total = after.total - before.total;
  const busy = after.busy - before.busy;
  if (total <= 0) return 0;
  const ownMs = (own.user + own.system) / 1000;
  // os.cpus() times are in ms per core.
  return Math.max(0, (busy - ownMs) / total);
}

function systemCpu(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const { user, nice, sys, irq, idle } = cpu.times;
    busy += user + nice + sys + irq;
    total += user + nice + sys + irq + idle;
  }
  return { busy, total };
}

/** The commit being measured, and whether the library sources differed from it when the run started. */
export function sourceRevision(): { commit: string; srcModified: string[] } {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const commit = git('rev-parse', '--short=12', 'HEAD').trim();
    const srcModified = git('status', '--porcelain', '--', 'src', 'supabase')
      .split('\n')
      .map((line) => line.slice(3).trim())
      .filter(Boolean);
    return { commit, srcModified };
  } catch {
    return { commit: 'unknown', srcModified: [] };
  }
}
