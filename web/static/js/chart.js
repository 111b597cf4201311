// The room's activity: totals and messages per minute as an inline SVG bar
// chart (no library).

import { h, svg, fmtTime } from './dom.js';

const W = 240;
const H = 56;

export function countersView(c) {
  if (!c) return h('p', { class: 'hint' }, 'Loading activity…');
  const series = c.per_minute || [];
  const peak = Math.max(1, ...series.map((p) => p.count));
  const recent = series.slice(-5).reduce((n, p) => n + p.count, 0);
  const bw = series.length ? W / series.length : W;
  const bars = series.map((p, i) => {
    const bh = p.count ? Math.max(2, (p.count / peak) * (H - 4)) : 0;
    const bar = svg('rect', { x: (i * bw + 0.5).toFixed(1), y: (H - bh).toFixed(1), width: Math.max(1, bw - 1).toFixed(1), height: bh.toFixed(1), rx: 1 });
    bar.append(svg('title', {}, `${fmtTime(p.minute)}: ${p.count} message${p.count === 1 ? '' : 's'}`));
    return bar;
  });
  const label = `Messages per minute over the last hour; peak ${peak === 1 && !series.some((p) => p.count) ? 0 : peak}`;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'spark', role: 'img', 'aria-label': label, preserveAspectRatio: 'none' },
    svg('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis' }), ...bars);
  return h('div', {},
    h('dl', { class: 'stats' },
      h('div', {}, h('dt', {}, 'Messages'), h('dd', { 'data-stat': 'total' }, String(c.total ?? 0))),
      h('div', {}, h('dt', {}, 'Members'), h('dd', { 'data-stat': 'members' }, String(c.members ?? 0))),
      h('div', {}, h('dt', {}, 'Last 5 min'), h('dd', { 'data-stat': 'recent' }, String(recent)))),
    chart,
    h('p', { class: 'chart-caption' }, h('span', {}, series.length ? fmtTime(series[0].minute) : ''), h('span', {}, 'messages / minute'), h('span', {}, series.length ? fmtTime(series.at(-1).minute) : '')));
}
