/**
 * A line chart panel as SVG markup: axes with "nice" ticks (1-2-5 steps), grid lines, tick labels,
 * axis labels, a title, one polyline with point markers per series, and a legend — what a
 * matplotlib subplot of the seed's curves shows.
 */
import {num, svgText} from './svg.js';

export interface Series {
  label: string;
  color: string;
  /** [x, y] pairs; non-finite y values are skipped (e.g. no test pass). */
  points: Array<[number, number]>;
}

export interface PanelSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Where the legend sits, away from where the curves usually run. */
  legend: 'top-right' | 'bottom-right';
  /** x ticks on whole numbers only (epochs). */
  integerX?: boolean;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Axis {
  lo: number;
  hi: number;
  step: number;
  ticks: number[];
}

/** The 1-2-5 step nearest to span/target. */
function niceStep(span: number, target: number): number {
  const raw = span / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const f = raw / magnitude;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * magnitude;
}

/** An axis covering [min, max] whose ends fall on ticks; a flat range is widened so it still draws. */
export function niceAxis(min: number, max: number, target = 5, integer = false): Axis {
  if (!(max > min)) {
    const pad = integer ? 1 : Math.abs(min) * 0.1 || 1;
    [min, max] = [min - pad, max + pad];
  }
  let step = niceStep(max - min, target);
  if (integer) step = Math.max(1, Math.round(step));
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  // Ticks as lo + k·step, rounded to 12 significant digits, so 0.1 + 0.2 prints as 0.3.
  for (let k = 0; lo + k * step <= hi + step * 1e-9; k++) ticks.push(Number((lo + k * step).toPrecision(12)));
  return {lo, hi, step, ticks};
}

/** Enough decimals to tell neighbouring ticks apart, exponent notation for tiny steps (learning rates). */
export function formatTick(value: number, step: number): string {
  if (value === 0) return '0';
  if (step < 1e-4) return value.toExponential(Math.max(0, Math.floor(Math.log10(Math.abs(value)) + 1e-9) - Math.floor(Math.log10(step) + 1e-9)));
  return value.toFixed(Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
}

const INSET = {left: 76, right: 16, top: 34, bottom: 54};
const TICK = 5;
const FONT = {title: 16, label: 14, tick: 12, legend: 13};

export function linePanel(spec: PanelSpec, box: Box): string {
  const area = {x: box.x + INSET.left, y: box.y + INSET.top, width: box.width - INSET.left - INSET.right, height: box.height - INSET.top - INSET.bottom};
  const finite = spec.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = finite.map(([x]) => x);
  const ys = finite.map(([, y]) => y);
  // No finite point at all still draws empty axes over [0, 1].
  const xAxis = niceAxis(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1, 6, spec.integerX);
  const yAxis = niceAxis(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1, 5);
  const px = (x: number) => area.x + ((x - xAxis.lo) / (xAxis.hi - xAxis.lo)) * area.width;
  const py = (y: number) => area.y + area.height - ((y - yAxis.lo) / (yAxis.hi - yAxis.lo)) * area.height;
  const bottom = area.y + area.height;
  const parts: string[] = [];
  for (const t of yAxis.ticks) {
    const y = py(t);
    parts.push(`<line x1="${num(area.x)}" y1="${num(y)}" x2="${num(area.x + area.width)}" y2="${num(y)}" stroke="#e4e4e4"/>`);
    parts.push(`<line x1="${num(area.x - TICK)}" y1="${num(y)}" x2="${num(area.x)}" y2="${num(y)}" stroke="#333"/>`);
    parts.push(svgText(area.x - TICK - 3, y + 4, formatTick(t, yAxis.step), {size: FONT.tick, anchor: 'end'}));
  }
  for (const t of xAxis.ticks) {
    const x = px(t);
    parts.push(`<line x1="${num(x)}" y1="${num(bottom)}" x2="${num(x)}" y2="${num(bottom + TICK)}" stroke="#333"/>`);
    parts.push(svgText(x, bottom + TICK + 14, formatTick(t, xAxis.step), {size: FONT.tick, anchor: 'middle'}));
  }
  parts.push(`<rect x="${num(area.x)}" y="${num(area.y)}" width="${num(area.width)}" height="${num(area.height)}" fill="none" stroke="#333"/>`);
  for (const s of spec.series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => [px(x), py(y)]);
    if (pts.length > 1) parts.push(`<polyline points="${pts.map(([x, y]) => `${num(x)},${num(y)}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [x, y] of pts) parts.push(`<circle cx="${num(x)}" cy="${num(y)}" r="3" fill="${s.color}"/>`);
  }
  parts.push(svgText(area.x + area.width / 2, box.y + 22, spec.title, {size: FONT.title, anchor: 'middle', weight: 'bold'}));
  parts.push(svgText(area.x + area.width / 2, box.y + box.height - 10, spec.xLabel, {size: FONT.label, anchor: 'middle'}));
  parts.push(svgText(box.x + 18, area.y + area.height / 2, spec.yLabel, {size: FONT.label, anchor: 'middle', rotate: -90}));
  parts.push(legend(spec, area));
  return `<g>${parts.join('')}</g>`;
}

function legend(spec: PanelSpec, area: Box): string {
  const rowHeight = 20;
  const width = 34 + Math.max(...spec.series.map((s) => s.label.length)) * 7.5;
  const height = spec.series.length * rowHeight + 8;
  const x = area.x + area.width - width - 8;
  const y = spec.legend === 'top-right' ? area.y + 8 : area.y + area.height - height - 8;
  const rows = spec.series.map((s, i) => {
    const cy = y + 4 + rowHeight * i + rowHeight / 2;
    return (
      `<line x1="${num(x + 8)}" y1="${num(cy)}" x2="${num(x + 26)}" y2="${num(cy)}" stroke="${s.color}" stroke-width="2"/>` +
      `<circle cx="${num(x + 17)}" cy="${num(cy)}" r="3" fill="${s.color}"/>` +
      svgText(x + 32, cy + 4.5, s.label, {size: FONT.legend})
    );
  });
  return `<rect x="${num(x)}" y="${num(y)}" width="${num(width)}" height="${num(height)}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb" rx="3"/>${rows.join('')}`;
}
