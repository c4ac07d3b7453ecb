import type { CaseResult } from './case.js';
import { formatNs } from './format.js';

const WIDTH = 1300;
const PLOT_LEFT = 480; // labels end 10 px left of it
const PLOT_RIGHT = WIDTH - 210; // room for the slowest rows' value labels
const [MIN_EXP, MAX_EXP] = [1, 9]; // 10 ns to 1 s
const BARS = [
  ['p999', 14, '#c7dcf2'],
  ['p99', 10, '#6fa3dc'],
  ['p50', 6, '#1f5fa8'],
] as const;

const escapeXml = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/** Log-scale position of a latency. */
function x(ns: number): number {
  const exp = Math.min(MAX_EXP, Math.max(MIN_EXP, Math.log10(ns)));
  return PLOT_LEFT + ((exp - MIN_EXP) / (MAX_EXP - MIN_EXP)) * (PLOT_RIGHT - PLOT_LEFT);
}

/**
 * SVG of the latency percentiles of every figure that has them: one row a figure, grouped by case,
 * p50 inside p99 inside p999 as nested bars on a log scale.
 */
export function latencyChart(cases: CaseResult[], title: string): string {
  const rows: string[] = [];
  let y = 80;
  for (const c of cases) {
    const figures = c.figures.filter((f) => f.latencyNs && Number.isFinite(f.latencyNs.p50));
    if (figures.length === 0) continue;
    rows.push(`<text x="10" y="${y + 16}" class="case">${escapeXml(c.title)}</text>`);
    y += 24;
    for (const f of figures) {
      const l = f.latencyNs!;
      const label = f.label.length > 74 ? `${f.label.slice(0, 73)}…` : f.label;
      rows.push(
        `<text x="${PLOT_LEFT - 10}" y="${y + 14}" class="label" text-anchor="end">${escapeXml(label)}</text>`,
      );
      for (const [key, height, color] of BARS) {
        const tip = escapeXml(`${f.label}: ${key} ${formatNs(l[key])}`);
        rows.push(
          `<rect x="${PLOT_LEFT}" y="${y + 3 + (14 - height) / 2}" width="${(x(l[key]) - PLOT_LEFT).toFixed(1)}" height="${height}" fill="${color}"><title>${tip}</title></rect>`,
        );
      }
      const values = `${formatNs(l.p50)} / ${formatNs(l.p99)} / ${formatNs(l.p999)}`;
      rows.push(
        `<text x="${(x(l.p999) + 4).toFixed(1)}" y="${y + 14}" class="value">${escapeXml(values)}</text>`,
      );
      y += 20;
    }
    y += 6;
  }
  const height = y + 20;
  const axis = Array.from({ length: MAX_EXP - MIN_EXP + 1 }, (_, i) => {
    const tx = x(10 ** (MIN_EXP + i)).toFixed(1);
    return `<line x1="${tx}" y1="72" x2="${tx}" y2="${height - 20}" class="grid"/><text x="${tx}" y="67" class="tick" text-anchor="middle">${formatNs(10 ** (MIN_EXP + i))}</text>`;
  });
  const legend = [...BARS]
    .reverse()
    .map(
      ([key, , color], i) =>
        `<rect x="${10 + i * 70}" y="43" width="14" height="10" fill="${color}"/><text x="${28 + i * 70}" y="52" class="tick">${key}</text>`,
    );
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
${legend.join('')}
${axis.join('\n')}
${rows.join('\n')}
</svg>
`;
}
