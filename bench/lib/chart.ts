import type { CaseResult, Figure } from './case.js';
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

const LINE_COLORS = ['#1f5fa8', '#d0542c', '#2e8b57', '#7a4fb5'];

/** SVG line chart of a figure's series: x = step (1-based), y = value on a log scale. */
export function seriesChart(figure: Figure, title: string): string {
  const series = figure.series;
  if (!series) return '';
  const [width, height, left, right, top, bottom] = [900, 420, 70, 880, 60, 370];
  const all = series.lines.flatMap((line) => line.values).filter((v) => v > 0);
  const steps = Math.max(...series.lines.map((line) => line.values.length));
  const [minExp, maxExp] = [
    Math.floor(Math.log10(Math.min(...all))),
    Math.ceil(Math.log10(Math.max(...all))),
  ];
  const px = (step: number) => left + ((step - 1) / Math.max(1, steps - 1)) * (right - left);
  const py = (v: number) =>
    bottom - ((Math.log10(v) - minExp) / Math.max(1, maxExp - minExp)) * (bottom - top);
  const grid: string[] = [];
  for (let exp = minExp; exp <= maxExp; exp++) {
    const y = py(10 ** exp).toFixed(1);
    grid.push(
      `<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" class="grid"/><text x="${left - 6}" y="${y}" class="tick" text-anchor="end" dominant-baseline="middle">${formatNumber(10 ** exp)}</text>`,
    );
  }
  for (let step = 1; step <= steps; step += Math.max(1, Math.round(steps / 10))) {
    grid.push(
      `<text x="${px(step).toFixed(1)}" y="${bottom + 16}" class="tick" text-anchor="middle">${step}</text>`,
    );
  }
  const lines = series.lines.map((line, i) => {
    const color = LINE_COLORS[i % LINE_COLORS.length];
    const points = line.values
      .map((v, step) => (v > 0 ? `${px(step + 1).toFixed(1)},${py(v).toFixed(1)}` : ''))
      .filter(Boolean)
      .join(' ');
    return `<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2"/><rect x="${left + i * 330}" y="36" width="14" height="4" fill="${color}"/><text x="${left + 20 + i * 330}" y="41" class="tick">${escapeXml(line.name)}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">
<style>
.title { font-size: 14px; font-weight: bold; fill: #222; }
.tick { font-size: 10px; fill: #555; }
.grid { stroke: #e3e3e3; stroke-width: 1; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="20" class="title">${escapeXml(title)}</text>
${grid.join('\n')}
<text x="${(left + right) / 2}" y="${height - 8}" class="tick" text-anchor="middle">${escapeXml(series.xLabel)}</text>
<text x="14" y="${(top + bottom) / 2}" class="tick" transform="rotate(-90 14 ${(top + bottom) / 2})" text-anchor="middle">${escapeXml(series.yLabel)} (log scale)</text>
${lines.join('\n')}
</svg>
`;
}

function formatNumber(value: number): string {
  if (value >= 1e6) return `${value / 1e6}M`;
  return value >= 1000 ? `${value / 1000}k` : String(value);
}
