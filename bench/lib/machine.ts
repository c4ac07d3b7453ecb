import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export type MachineInfo = ReturnType<typeof machineInfo>;

export function machineInfo() {
  let osName = `${os.type()} ${os.release()}`;
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // not Linux
  }
  return {
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    /** CPUs this process may run on (cgroup / affinity). */
    availableParallelism: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    os: osName,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    /** 1-minute load average when the run started. */
    loadAverageStart: os.loadavg()[0] ?? 0,
  };
}

/** The share of all cores that other processes use, sampled over `ms`. */
export async function otherCpuLoad(ms = 500): Promise<number> {
  const busyAndTotal = () =>
    os
      .cpus()
      .reduce<[number, number]>(
        ([busy, total], { times: { user, nice, sys, irq, idle } }) => [
          busy + user + nice + sys + irq,
          total + user + nice + sys + irq + idle,
        ],
        [0, 0],
      );
  const [busyBefore, totalBefore] = busyAndTotal();
  const ownBefore = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const [busyAfter, totalAfter] = busyAndTotal();
  const own = process.cpuUsage(ownBefore);
  const ownMs = (own.user + own.system) / 1000; // os.cpus() times are in ms
  const total = totalAfter - totalBefore;
  return total > 0 ? Math.max(0, (busyAfter - busyBefore - ownMs) / total) : 0;
}

/** The commit measured, and the files under src/ or supabase/ that differed from it. */
export function sourceRevision(): { commit: string; srcModified: string[] } {
  const git = (...args: string[]) =>
    execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    return {
      commit: git('rev-parse', '--short=12', 'HEAD').trim(),
      srcModified: git('status', '--porcelain', '--', 'src', 'supabase')
        .split('\n')
        .map((line) => line.slice(3).trim())
        .filter(Boolean),
    };
  } catch {
    return { commit: 'unknown', srcModified: [] };
  }
}
