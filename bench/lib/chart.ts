import type { CaseReport } from './results.js';
import { formatNs } from './stats.js';

const WIDTH = 1300;
const LABEL_WIDTH = 470;
const PLOT_LEFT = LABEL_WIDTH + 10;
/** Room on the right for the value labels of the slowest rows. */
const PLOT_RIGHT = WIDTH - 210;
const ROW = 20;
const HEADER = 24;
const MIN_NS = 10;
const MAX_NS = 1e9;
const COLORS = { p50: '#1f5fa8', p99: '#6fa3dc', p999: '#c7dcf2' } as const;

/**
 * A hand-written SVG of the latency percentiles of every figure that has them: one row per figure,
 * grouped by case, p50 / p99 / p999 as nested bars on a log scale from 10 ns to 1 s.
 */
export function latencyChart(cases: CaseReport[], title: string): string {
  const x = (ns: number) => {
    const clamped = Math.min(MAX_NS, Math.max(MIN_NS, ns));
    const t = (Math.log10(clamped) - Math.log10(MIN_NS)) / (Math.log10(MAX_NS) - Math.log10(MIN_NS));
    return PLOT_LEFT + t * (PLOT_RIGHT - PLOT_LEFT);
  };
  const body: string[] = [];
  let y = 80;
  for (const c of cases) {
    const rows = c.figures.filter((f) => f.latencyNs && Number.isFinite(f.latencyNs.p50));
    if (rows.length === 0) continue;
    body.push(`<text x="10" y="${y + 16}" class="case">${escapeXml(c.title)}</text>`);
    y += HEADER;
    for (const f of rows) {
      const l = f.latencyNs as NonNullable<typeof f.latencyNs>;
      const label = f.label.length > 74 ? `${f.label.slice(0, 73)}…` : f.label;
      body.push(
        `<text x="${LABEL_WIDTH}" y="${y + 14}" class="label" text-anchor="end">${escapeXml(label)}</text>`,
      );
      for (const [key, height] of [
        ['p999', 14],
        ['p99', 10],
        ['p50', 6],
      ] as const) {
        const value = l[key];
        const top = y + 3 + (14 - height) / 2;
        body.push(
          `<rect x="${PLOT_LEFT}" y="${top}" width="${(x(value) - PLOT_LEFT).toFixed(1)}" height="${height}" fill="${COLORS[key]}"><title>${escapeXml(`${f.label}: ${key} ${formatNs(value)}`)}</title></rect>`,
        );
      }
      body.push(
        `<text x="${(x(l.p999) + 4).toFixed(1)}" y="${y + 14}" class="value">${escapeXml(`${formatNs(l.p50)} / ${formatNs(l.p99)} / ${formatNs(l.p999)}`)}</text>`,
      );
      y += ROW;
    }
    y += 6;
  }
  const height = y + 20;
  const ticks: string[] = [];
  for (let exp = Math.log10(MIN_NS); exp <= Math.log10(MAX_NS); exp++) {
    const tx = x(10 ** exp).toFixed(1);
    ticks.push(`<line x1="${tx}" y1="72" x2="${tx}" y2="${height - 20}" class="grid"/>`);
    ticks.push(`<text x="${tx}" y="67" class="tick" text-anchor="middle">${formatNs(10 ** exp)}</text>`);
  }
  const legend = (['p50', 'p99', 'p999'] as const)
    .map(
      (key, i) =>
        `<rect x="${10 + i * 70}" y="43" width="14" height="10" fill="${COLORS[key]}"/><text x="${10 + i * 70 + 18}" y="52" class="tick">${key}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">
<style>
.title { font-size: 15px; font-weight: bold; fill: #222; }
.case { font-size: 13px; font-weight: bold; fill: #222; }
.label { font-size: 11px; fill: #333; }
.value { font-size: 10px; fill: #444; }
.tick { font-size: 10px; fill: #555; }
.grid { stroke: #e3e3e3; stroke-width: 1; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="20" class="title">${escapeXml(title)}</text>
<text x="10" y="35" class="tick">latency per operation, log scale; bars: p50 (dark) inside p99 inside p999 (light); values: p50 / p99 / p999</text>
${legend}
${ticks.join('\n')}
${body.join('\n')}
</svg>
`;
}

function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}
