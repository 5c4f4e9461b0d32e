// A line chart as a standalone SVG document, written by hand (no dependency): panels stacked over
// one shared x axis, each with its own y axis, label and unit, so that quantities of different
// units (MB/s, milliseconds) are read over the same time line.
//
//   const svg = svgChart({
//     title: 'rebuild under load', xLabel: 'time', xUnit: 's',
//     panels: [{ label: 'rebuild', unit: 'MB/s', points: [[0, 0], [1, 180]] },
//              { label: 'read p99', unit: 'ms', points: [[0, 0.4], [1, 2.1]] }],
//   });
//   fs.writeFileSync('chart.svg', svg);

export type Point = readonly [x: number, y: number];

export interface Panel {
  /** What the line shows (the y axis title, with the unit). */
  label: string;
  unit: string;
  points: readonly Point[];
  color?: string;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  xUnit: string;
  panels: readonly Panel[];
  /** A line under the title (what was measured, where). */
  subtitle?: string;
}

/** The chart's layout, in SVG user units: exported so that tests can find where a value must land. */
export const LAYOUT = {
  width: 800,
  /** Space above the first panel (title, subtitle). */
  top: 60,
  panelHeight: 220,
  /** Space between panels. */
  gap: 40,
  left: 80,
  right: 30,
  /** Space under the last panel (x tick labels, x axis title). */
  bottom: 60,
  ticks: 5,
} as const;

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

/** The rectangle of panel `i`'s plot area. */
export function plotArea(i: number): { x: number; y: number; width: number; height: number } {
  return {
    x: LAYOUT.left,
    y: LAYOUT.top + i * (LAYOUT.panelHeight + LAYOUT.gap),
    width: LAYOUT.width - LAYOUT.left - LAYOUT.right,
    height: LAYOUT.panelHeight,
  };
}

/** Total height of a chart with `panels` panels. */
export function chartHeight(panels: number): number {
  return LAYOUT.top + panels * LAYOUT.panelHeight + (panels - 1) * LAYOUT.gap + LAYOUT.bottom;
}

/**
 * An axis range from 0 (or the data's minimum, when negative) to a round number at or above the
 * maximum, with tick values 1, 2, 2.5 or 5 times a power of ten apart.
 */
export function niceAxis(values: readonly number[], ticks: number = LAYOUT.ticks): { min: number; max: number; step: number } {
  const finite = values.filter(Number.isFinite);
  const lo = Math.min(0, ...finite);
  const hi = Math.max(lo, ...finite);
  const span = hi - lo || 1;
  const raw = span / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  return { min: Math.floor(lo / step) * step, max: Math.ceil(hi / step) * step || step, step };
}

/** Maps [d0, d1] linearly onto [r0, r1]. */
export function scale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** A number as short text for a tick label (no float noise). */
function tickText(v: number): string {
  return String(Number(v.toPrecision(6)));
}

const fmt = (v: number) => v.toFixed(2);

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${fmt(x)}" y="${fmt(y)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`;
}

function ticksOf(axis: { min: number; max: number; step: number }): number[] {
  const n = Math.round((axis.max - axis.min) / axis.step);
  return Array.from({ length: n + 1 }, (_, k) => axis.min + k * axis.step);
}

/** One panel: frame, y grid and tick labels, y title, the line and its points; x ticks under the last. */
function panelSvg(p: Panel, i: number, last: boolean, xAxis: ReturnType<typeof niceAxis>, spec: ChartSpec): string[] {
  const area = plotArea(i);
  const yAxis = niceAxis(p.points.map(([, y]) => y));
  const sx = scale(xAxis.min, xAxis.max, area.x, area.x + area.width);
  const sy = scale(yAxis.min, yAxis.max, area.y + area.height, area.y);
  const color = p.color ?? COLORS[i % COLORS.length];
  const out = [`<g class="panel" data-label="${escapeXml(p.label)}">`];
  out.push(`<rect x="${fmt(area.x)}" y="${fmt(area.y)}" width="${fmt(area.width)}" height="${fmt(area.height)}" fill="none" stroke="#888"/>`);
  for (const v of ticksOf(yAxis)) {
    const y = sy(v);
    out.push(`<line x1="${fmt(area.x)}" y1="${fmt(y)}" x2="${fmt(area.x + area.width)}" y2="${fmt(y)}" stroke="#e4e4e4"/>`);
    out.push(text(area.x - 8, y + 4, tickText(v), 'text-anchor="end" font-size="12"'));
  }
  for (const v of ticksOf(xAxis)) {
    const x = sx(v);
    out.push(`<line x1="${fmt(x)}" y1="${fmt(area.y + area.height)}" x2="${fmt(x)}" y2="${fmt(area.y + area.height + 5)}" stroke="#888"/>`);
    if (last) out.push(text(x, area.y + area.height + 20, tickText(v), 'text-anchor="middle" font-size="12"'));
  }
  const cy = area.y + area.height / 2;
  out.push(text(22, cy, `${p.label} (${p.unit})`, `text-anchor="middle" font-size="13" transform="rotate(-90 22 ${fmt(cy)})"`));
  if (p.points.length > 0) {
    const pts = p.points.map(([x, y]) => `${fmt(sx(x))},${fmt(sy(y))}`).join(' ');
    out.push(`<polyline class="series" points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const [x, y] of p.points) out.push(`<circle cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="2.5" fill="${color}"/>`);
  } else {
    out.push(text(area.x + area.width / 2, cy, 'no samples', 'text-anchor="middle" font-size="13" fill="#888"'));
  }
  if (last) out.push(text(area.x + area.width / 2, area.y + area.height + 45, `${spec.xLabel} (${spec.xUnit})`, 'text-anchor="middle" font-size="13"'));
  out.push('</g>');
  return out;
}

/** The chart as an SVG document (UTF-8 text). */
export function svgChart(spec: ChartSpec): string {
  if (spec.panels.length === 0) throw new Error('a chart needs at least one panel');
  const height = chartHeight(spec.panels.length);
  const xAxis = niceAxis(spec.panels.flatMap((p) => p.points.map(([x]) => x)));
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${LAYOUT.width}" height="${height}" viewBox="0 0 ${LAYOUT.width} ${height}" font-family="sans-serif">`,
    `<rect width="${LAYOUT.width}" height="${height}" fill="white"/>`,
    text(LAYOUT.width / 2, 24, spec.title, 'text-anchor="middle" font-size="16" font-weight="bold"'),
  ];
  if (spec.subtitle) out.push(text(LAYOUT.width / 2, 44, spec.subtitle, 'text-anchor="middle" font-size="12" fill="#555"'));
  spec.panels.forEach((p, i) => out.push(...panelSvg(p, i, i === spec.panels.length - 1, xAxis, spec)));
  out.push('</svg>', '');
  return out.join('\n');
}
