import type { Figure } from './case.js';

/** Three significant digits at most: 1.23, 12.3, 123. */
const digits = (v: number) => v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);

export function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return 'n/a';
  if (ns < 1_000) return `${ns.toFixed(ns < 10 ? 2 : ns < 100 ? 1 : 0)} ns`;
  if (ns < 1e6) return `${digits(ns / 1e3)} µs`;
  return ns < 1e9 ? `${digits(ns / 1e6)} ms` : `${digits(ns / 1e9)} s`;
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return 'n/a';
  if (perSecond >= 1e6) return `${digits(perSecond / 1e6)} M/s`;
  return perSecond >= 1e3 ? `${digits(perSecond / 1e3)} k/s` : `${digits(perSecond)} /s`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 20) return `${digits(bytes / 2 ** 20)} MiB`;
  return bytes >= 2 ** 10 ? `${digits(bytes / 2 ** 10)} KiB` : `${Math.round(bytes)} B`;
}

export const formatRatio = (ratio: number) => (Number.isFinite(ratio) ? `${digits(ratio)}×` : 'n/a');

/** A figure's value in its unit. */
export function formatValue(f: Figure): string {
  if (f.value === undefined) return 'n/a';
  if (f.unit === 'bytes') return formatBytes(f.value);
  return f.unit === 'ms' ? `${f.value.toFixed(f.value >= 100 ? 0 : 1)} ms` : String(f.value);
}

/** p50 · p99 · p999 of a figure's latency. */
export const formatLatency = ({ latencyNs: l }: Figure) =>
  l ? `p50 ${formatNs(l.p50)} · p99 ${formatNs(l.p99)} · p999 ${formatNs(l.p999)}` : 'n/a';
