// The dashboard's charts, drawn as SVG by hand: a time-series line chart with alert markers, a
// split bar and a confidence-interval strip.

import {svg} from './dom.js';

const WIDTH = 720;
const HEIGHT = 220;
const MARGIN = {top: 14, right: 14, bottom: 28, left: 52};
export const HOUR_MS = 3600e3;
export const DAY_MS = 24 * HOUR_MS;
export const MINUTE_MS = 60e3;
const TIME_STEPS = [1, 2, 5, 10, 15, 30].map((m) => m * MINUTE_MS)
  .concat([1, 2, 3, 6, 12, 24, 48, 96, 168, 336, 720].map((h) => h * HOUR_MS));

/** Round tick values covering [lo, hi], about ``count`` of them. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= raw);
  const decimals = Math.max(0, 1 - Math.floor(Math.log10(step)));
  const first = Math.floor(lo / step) * step;
  const ticks = [];
  for (let i = 0; first + i * step < hi + step * 0.999; i += 1) {
    ticks.push(Number((first + i * step).toFixed(decimals)) || 0);
  }
  return ticks;
}

/** Tick times on whole UTC minutes, hours or days, at most ``max`` of them. */
export function timeTicks(t0, t1, max = 8) {
  const step = TIME_STEPS.find((s) => (t1 - t0) / s <= max) ?? TIME_STEPS.at(-1);
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return {ticks, step};
}

function timeLabel(t, step) {
  const iso = new Date(t).toISOString();
  if (step >= DAY_MS) return iso.slice(5, 10);
  if (step < HOUR_MS) return iso.slice(11, 16);
  return iso.slice(11, 13) === '00' ? `${iso.slice(5, 10)} 00h` : `${iso.slice(11, 13)}h`;
}

/**
 * A line chart over time.
 *
 * series:  [{arm, label, points: [{t (ms), v, tip, few}]}]; a line is broken where consecutive
 *          points are more than ``stepMs`` apart (a period without outcomes); a point marked
 *          ``few`` (too few outcomes behind it) is drawn hollow and left off the line, on the
 *          bottom axis when its value is null (no figure is shown for it).
 * domain:  [t0, t1] in ms, the window the API answered for.
 * markers: [{t, kind, drift (bool), tip}] drawn as vertical lines (alerts, drift events).
 * include: y values the scale always covers (0 for MAE, 0 and 1 for R²).
 * reference: a y value drawn as a dashed horizontal line (the nominal level of a coverage).
 */
export function lineChart({label, series, domain, stepMs, markers = [], include = [], digits = 2,
                           reference = null, testid}) {
  const root = svg('svg', {
    class: 'chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': label,
    testid,
  });
  const values = series.flatMap((s) => s.points.map((p) => p.v))
    .filter((v) => v !== null).concat(include);
  if (reference !== null) values.push(reference);
  const ticks = niceTicks(Math.min(...values), Math.max(...values));
  const [y0, y1] = [ticks[0], ticks.at(-1)];
  let [t0, t1] = domain;
  if (!(t1 > t0)) t1 = t0 + stepMs;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (t) => MARGIN.left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (v) => MARGIN.top + plotH - ((v - y0) / (y1 - y0)) * plotH;
  const r = (n) => n.toFixed(1);

  const tickStep = ticks.length > 1 ? Number((ticks[1] - ticks[0]).toPrecision(6)) : 1;
  const decimals = Math.min(digits + 1, (String(tickStep).split('.')[1] || '').length);
  const grid = svg('g', {class: 'grid'});
  for (const v of ticks) {
    grid.append(
      svg('line', {x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: r(y(v)), y2: r(y(v)),
                   class: v === 0 ? 'zero' : null}),
      svg('text', {x: MARGIN.left - 6, y: r(y(v) + 4), class: 'y-label', 'text-anchor': 'end',
                   text: v.toFixed(decimals)}),
    );
  }
  const time = timeTicks(t0, t1);
  for (const t of time.ticks) {
    grid.append(
      svg('line', {x1: r(x(t)), x2: r(x(t)), y1: MARGIN.top, y2: MARGIN.top + plotH,
                   class: 'x-grid'}),
      svg('text', {x: r(x(t)), y: HEIGHT - 8, class: 'x-label', 'text-anchor': 'middle',
                   text: timeLabel(t, time.step)}),
    );
  }
  if (reference !== null) {
    grid.append(svg('line', {x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: r(y(reference)),
                             y2: r(y(reference)), class: 'reference', testid: 'chart-reference',
                             dataset: {value: String(reference)}}));
  }
  root.append(grid);

  const marks = svg('g', {class: 'markers'});
  for (const m of markers) {
    if (m.t < t0 || m.t > t1) continue;
    const mx = r(x(m.t));
    marks.append(svg('g', {class: m.drift ? 'marker drift' : 'marker', testid: 'alert-marker',
                           dataset: {kind: m.kind, t: new Date(m.t).toISOString()}},
      svg('line', {x1: mx, x2: mx, y1: MARGIN.top, y2: MARGIN.top + plotH}),
      svg('path', {d: `M${mx} ${MARGIN.top + 7}l-5 -7h10z`}),
      svg('title', {text: m.tip}),
    ));
  }
  root.append(marks);

  for (const s of series) {
    const group = svg('g', {class: `series arm-${s.arm}`, dataset: {arm: s.arm}});
    let d = '';
    let previous = null;
    for (const p of s.points) {
      if (p.few) {
        previous = null;
        continue;
      }
      const gap = previous === null || p.t - previous > stepMs * 1.5;
      d += `${gap ? 'M' : 'L'}${r(x(p.t))} ${r(y(p.v))}`;
      previous = p.t;
    }
    group.append(svg('path', {class: 'line', d}));
    for (const p of s.points) {
      const dataset = {arm: s.arm, t: new Date(p.t).toISOString(), value: String(p.v)};
      if (p.few) dataset.few = 'true';
      const noFigure = p.v === null;
      group.append(svg('circle', {
        class: p.few ? `point few${noFigure ? ' no-figure' : ''}` : 'point', cx: r(x(p.t)),
        cy: r(noFigure ? MARGIN.top + plotH : y(p.v)), r: 3,
        testid: 'chart-point', dataset,
      }, svg('title', {text: p.tip})));
    }
    root.append(group);
  }
  return root;
}

/** The ML share of bookings as a bar, with the flag's percentage marked on it. */
export function splitBar({share, target, testid}) {
  const width = 400;
  const root = svg('svg', {class: 'split-bar', viewBox: `0 0 ${width} 22`, testid,
                           preserveAspectRatio: 'none',
                           role: 'img', 'aria-label': 'ML share against the rollout percentage'});
  root.append(svg('rect', {class: 'arm-heuristic', x: 0, y: 4, width, height: 14, rx: 3}));
  if (share !== null) {
    root.append(svg('rect', {class: 'arm-ml', x: 0, y: 4, width: (share * width).toFixed(1),
                             height: 14, rx: 3}));
  }
  if (target !== null) {
    const tx = Math.min(width - 1, Math.max(1, (target / 100) * width)).toFixed(1);
    root.append(svg('line', {class: 'target', x1: tx, x2: tx, y1: 0, y2: 22},
      svg('title', {text: `rollout ${target} %`})));
  }
  return root;
}

/**
 * Intervals on one axis: rows [{label, point, low, high, className}], with a reference line
 * (0 for a difference).
 */
export function intervalStrip({rows, reference = null, testid}) {
  const width = 400;
  const rowH = 22;
  const left = 90;
  const values = rows.flatMap((row) => [row.point, row.low, row.high])
    .filter((v) => v !== null && v !== undefined);
  if (reference !== null) values.push(reference);
  const root = svg('svg', {class: 'interval-strip', testid,
                           viewBox: `0 0 ${width} ${rows.length * rowH + 20}`});
  if (!values.length) return root;
  const ticks = niceTicks(Math.min(...values), Math.max(...values), 4);
  const [lo, hi] = [ticks[0], ticks.at(-1)];
  const x = (v) => (left + ((v - lo) / (hi - lo)) * (width - left - 12)).toFixed(1);
  const bottom = rows.length * rowH;
  for (const t of ticks) {
    root.append(svg('line', {class: 'grid-tick', x1: x(t), x2: x(t), y1: 0, y2: bottom}),
                svg('text', {class: 'x-label', x: x(t), y: bottom + 14, 'text-anchor': 'middle',
                             text: String(t)}));
  }
  if (reference !== null) {
    root.append(svg('line', {class: 'reference', x1: x(reference), x2: x(reference), y1: 0,
                             y2: bottom}));
  }
  rows.forEach((row, i) => {
    const cy = i * rowH + rowH / 2;
    root.append(svg('text', {class: 'row-label', x: 0, y: cy + 4, text: row.label}));
    if (row.low !== null && row.high !== null) {
      root.append(svg('line', {class: `interval ${row.className}`, x1: x(row.low), x2: x(row.high),
                               y1: cy, y2: cy}));
    }
    if (row.point !== null) {
      root.append(svg('circle', {class: `interval-point ${row.className}`, cx: x(row.point), cy,
                                 r: 4}));
    }
  });
  return root;
}
