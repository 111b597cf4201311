// Small DOM and formatting helpers shared by the views.

export const $ = (id) => document.getElementById(id);

// h builds an element: h('li', {class: 'x', onclick: f}, child, 'text', …).
// Attributes starting with "on" become listeners; false/null ones are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

const ICONS = {
  smile: ['M8 14s1.5 2 4 2 4-2 4-2', 'M9 9h.01', 'M15 9h.01'],
  edit: ['M12 20h9', 'M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z'],
  trash: ['M3 6h18', 'M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6', 'M10 11v6', 'M14 11v6', 'M9 6V4a1 1 0 0 1 1-1h4a1 1 0 0 1 1 1v2'],
};

// icon is a stroke icon drawn in SVG, so no font is needed for it.
export function icon(name) {
  const el = svg('svg', { class: 'i', viewBox: '0 0 24 24', 'aria-hidden': 'true' }, ...ICONS[name].map((d) => svg('path', { d })));
  if (name === 'smile') el.prepend(svg('circle', { cx: 12, cy: 12, r: 9 }));
  return el;
}

// The mention rule of the server (commands.Mentions): @name not preceded by
// a word character or @.
const MENTION = /(^|[^\w@])@([A-Za-z0-9_.-]{1,64})/g;

// richText renders message text with @mentions as spans; me's are marked.
export function richText(text, me) {
  const out = [];
  let at = 0;
  for (const m of text.matchAll(MENTION)) {
    const start = m.index + m[1].length;
    if (start > at) out.push(text.slice(at, start));
    const name = m[2];
    out.push(h('span', { class: name === me ? 'mention me' : 'mention' }, '@' + name));
    at = start + 1 + name.length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'short', day: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export const fmtTime = (ms) => timeFmt.format(ms);
export const fmtFull = (ms) => fullFmt.format(ms);
export function fmtDay(ms) {
  const d = new Date(ms);
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return 'Today';
  const y = new Date(today);
  y.setDate(today.getDate() - 1);
  if (d.toDateString() === y.toDateString()) return 'Yesterday';
  return dayFmt.format(ms);
}

// A stable hue per name, for avatars.
export function hue(name) {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

export function avatar(name, cls = 'avatar') {
  const el = h('span', { class: cls, 'aria-hidden': 'true' }, (name[0] || '?').toUpperCase());
  el.style.setProperty('--hue', hue(name));
  return el;
}

export function toast(text, { kind = 'info', action = null, ms = 5000 } = {}) {
  const box = $('toasts');
  const el = h('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : 'status' }, h('span', {}, text));
  if (action) {
    el.append(h('button', { type: 'button', class: 'link', onclick: () => { action.run(); el.remove(); } }, action.label));
  }
  box.append(el);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => el.remove(), ms);
  return el;
}

export function randomId(prefix) {
  const a = new Uint8Array(9);
  crypto.getRandomValues(a);
  return prefix + Array.from(a, (b) => b.toString(36).padStart(2, '0')).join('');
}

export const ROOM_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
