// rtstack chat UI: one WebSocket to /ws, history over the HTTP API.
// Server frames may carry several JSON objects separated by "\n".
'use strict';

const $ = (id) => document.getElementById(id);
const EMOJIS = ['👍', '❤️', '😂', '🎉'];
const MAX_MESSAGES = 500; // per room kept in memory
const MAX_TEXT_BYTES = 4096;
const ROOM_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const state = {
  token: localStorage.getItem('rtstack.token') || '',
  user: '',
  ws: null,
  backoff: 500,
  retryTimer: null,
  rooms: new Map(), // name → room (see newRoom)
  current: null, // name of the room shown
  pending: new Map(), // client_id → {room, text}: sent, not yet acknowledged
  editing: null, // message_id being edited
  leaderboard: [],
};

function newRoom(name) {
  return {
    name,
    items: [], // messages and system lines, in log order
    byId: new Map(), // message_id → message
    last: null, // {partition, offset} of the last event applied
    presence: [],
    members: new Map(), // user → 'joined' | 'left', to show changes only
    unread: 0,
  };
}

// ---- token ----

function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function tokenProblem(token) {
  const c = claimsOf(token);
  if (!c || !c.sub) return 'That does not look like an rtstack token.';
  if (c.exp && c.exp * 1000 < Date.now()) return 'This token has expired: make a new one.';
  return '';
}

function signIn(token) {
  const problem = tokenProblem(token);
  if (problem) {
    $('login-error').textContent = problem;
    showLogin();
    return;
  }
  state.token = token;
  state.user = claimsOf(token).sub;
  localStorage.setItem('rtstack.token', token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('whoami').textContent = claimsOf(token).name || state.user;
  const saved = JSON.parse(localStorage.getItem('rtstack.rooms') || '[]');
  for (const r of saved) if (ROOM_RE.test(r) && !state.rooms.has(r)) state.rooms.set(r, newRoom(r));
  if (!state.current && state.rooms.size) state.current = state.rooms.keys().next().value;
  connect();
  render();
}

function showLogin() {
  $('app').hidden = true;
  $('login').hidden = false;
  $('logout').hidden = true;
  $('whoami').textContent = '';
  $('token').value = '';
  $('token').focus();
}

function signOut() {
  localStorage.removeItem('rtstack.token');
  state.token = '';
  clearTimeout(state.retryTimer);
  if (state.ws) {
    state.ws.onclose = null;
    state.ws.close(1000, 'sign out');
    state.ws = null;
  }
  setStatus(false);
  showLogin();
}

// ---- connection ----

function setStatus(on, text) {
  const s = $('status');
  s.className = 'status ' + (on ? 'on' : 'off');
  s.textContent = text || (on ? 'connected' : 'offline');
  $('text').disabled = $('send').disabled = !on || !state.current;
}

function connect() {
  clearTimeout(state.retryTimer);
  const problem = tokenProblem(state.token);
  if (problem) {
    $('login-error').textContent = problem;
    signOut();
    return;
  }
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  setStatus(false, 'connecting…');
  let opened = false;
  ws.onopen = () => {
    opened = true;
    state.backoff = 500;
    setStatus(true);
    send({ type: 'subscribe', channel: 'leaderboard' });
    for (const room of state.rooms.values()) rejoin(room);
    // Resend what was never acknowledged: the client_id makes it safe.
    // What was acknowledged is in the log and comes back with the replay.
    for (const [clientID, p] of state.pending) {
      if (p.acked) state.pending.delete(clientID);
      else send({ type: 'send', room: p.room, text: p.text, client_id: clientID });
    }
  };
  ws.onmessage = (ev) => {
    for (const line of String(ev.data).split('\n')) {
      if (!line.trim()) continue;
      let f;
      try {
        f = JSON.parse(line);
      } catch {
        console.warn('bad frame', line);
        continue;
      }
      handle(f);
    }
    scheduleRender();
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (!opened && tokenProblem(state.token)) return signOut();
    const delay = Math.min(state.backoff, 10000) * (0.75 + Math.random() / 2);
    state.backoff *= 2;
    setStatus(false, `reconnecting in ${Math.round(delay / 1000)}s${ev.reason ? ' (' + ev.reason + ')' : ''}`);
    state.retryTimer = setTimeout(connect, delay);
  };
}

function send(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(obj));
  return true;
}

// rejoin (re)subscribes a room after a (re)connect: with the last position
// seen, the gateway replays exactly what was missed; without one, history
// is loaded over HTTP first.
function rejoin(room) {
  if (room.last) send({ type: 'join', room: room.name, since: room.last });
  else loadHistory(room);
}

async function loadHistory(room, joinWithoutSince) {
  room.items = [];
  room.byId = new Map();
  room.members = new Map();
  room.last = null;
  let since = null;
  try {
    const res = await fetch(`/api/rooms/${encodeURIComponent(room.name)}/messages?limit=100`, {
      headers: { Authorization: 'Bearer ' + state.token },
    });
    const body = await res.json();
    if (!res.ok) throw new Error((body.error && body.error.message) || res.statusText);
    for (const m of body.messages) addMessage(room, m);
    // The header says how far the projection had read when it answered:
    // joining from there replays nothing twice and misses nothing.
    const partition = body.messages.length ? body.messages[0].partition : null;
    const header = res.headers.get('X-Rtstack-Position') || '';
    for (const pair of header.split(',')) {
      const [p, o] = pair.split(':').map(Number);
      if (p === partition && Number.isFinite(o)) since = { partition: p, offset: o };
    }
    if (since) room.last = since;
  } catch (err) {
    toast(`history of ${room.name}: ${err.message}`);
  }
  send(since && !joinWithoutSince ? { type: 'join', room: room.name, since } : { type: 'join', room: room.name });
  scheduleRender();
}

// ---- frames ----

function handle(f) {
  const room = f.room ? state.rooms.get(f.room) : null;
  switch (f.type) {
    case 'ack': {
      // The message is in the log; its 'message' frame follows in log
      // order (or came already, for a duplicate).
      const p = state.pending.get(f.client_id);
      if (!p) return;
      const shown = state.rooms.get(p.room)?.byId.has(f.message_id);
      if (f.duplicate || shown) state.pending.delete(f.client_id);
      else p.acked = true;
      return;
    }
    case 'error':
      if (f.ref) state.pending.delete(f.ref);
      toast(`${f.code}: ${f.message}`);
      return;
    case 'resync':
      // The gateway cannot replay from our position: reload from history.
      if (room) loadHistory(room, true);
      return;
    case 'presence':
      if (room) room.presence = f.users || [];
      return;
    case 'leaderboard':
      state.leaderboard = f.entries || [];
      return;
  }
  if (!room || typeof f.offset !== 'number') return;
  // Events arrive in log order; after a history load or a reconnect with
  // `since`, anything at or before the last applied position is old.
  if (room.last && room.last.partition === f.partition && f.offset <= room.last.offset) return;
  room.last = { partition: f.partition, offset: f.offset };
  const m = f.message_id ? room.byId.get(f.message_id) : null;
  switch (f.type) {
    case 'message':
      addMessage(room, f);
      if (f.client_id) state.pending.delete(f.client_id);
      if (f.room !== state.current) room.unread++;
      break;
    case 'edited':
      if (m) Object.assign(m, { text: f.text, edited: true });
      break;
    case 'deleted':
      if (m) Object.assign(m, { text: '', deleted: true });
      break;
    case 'reaction': {
      if (!m) break;
      const users = m.reactions.get(f.emoji) || new Set();
      if (f.removed) users.delete(f.user);
      else users.add(f.user);
      if (users.size) m.reactions.set(f.emoji, users);
      else m.reactions.delete(f.emoji);
      break;
    }
    case 'joined':
    case 'left':
      // Every (re)join is an event; show only actual changes.
      if (room.members.get(f.user) !== f.type) {
        pushItem(room, { system: `${f.user} ${f.type} the room`, partition: f.partition, offset: f.offset });
      }
      room.members.set(f.user, f.type);
      break;
  }
}

function addMessage(room, f) {
  if (room.byId.has(f.message_id)) return;
  const m = {
    id: f.message_id, user: f.user, text: f.text || '', ts: f.ts,
    partition: f.partition, offset: f.offset,
    edited: !!f.edited, deleted: !!f.deleted,
    reactions: new Map(Object.entries(f.reactions || {}).map(([e, us]) => [e, new Set(us)])),
  };
  room.byId.set(m.id, m);
  pushItem(room, m);
}

function pushItem(room, item) {
  room.items.push(item);
  if (room.items.length > MAX_MESSAGES) {
    const gone = room.items.splice(0, room.items.length - MAX_MESSAGES);
    for (const g of gone) if (g.id) room.byId.delete(g.id);
  }
}

// ---- actions ----

function joinRoom(name) {
  if (!ROOM_RE.test(name)) return toast('Room names use letters, digits, ".", "_" and "-".');
  if (!state.rooms.has(name)) {
    const room = newRoom(name);
    state.rooms.set(name, room);
    saveRooms();
    if (state.ws && state.ws.readyState === WebSocket.OPEN) loadHistory(room);
  }
  selectRoom(name);
}

function leaveRoom(name) {
  send({ type: 'leave', room: name });
  state.rooms.delete(name);
  saveRooms();
  if (state.current === name) state.current = state.rooms.keys().next().value || null;
  render();
}

function saveRooms() {
  localStorage.setItem('rtstack.rooms', JSON.stringify([...state.rooms.keys()]));
}

function selectRoom(name) {
  state.current = name;
  const room = state.rooms.get(name);
  if (room) room.unread = 0;
  cancelEdit();
  render();
  $('text').focus();
}

function submitText() {
  const text = $('text').value.trim();
  if (!text || !state.current) return;
  if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) return toast(`Messages are at most ${MAX_TEXT_BYTES} bytes.`);
  if (state.editing) {
    if (!send({ type: 'edit', room: state.current, message_id: state.editing, text })) return toast('Not connected.');
    cancelEdit();
  } else {
    const clientID = crypto.randomUUID();
    state.pending.set(clientID, { room: state.current, text, acked: false });
    send({ type: 'send', room: state.current, text, client_id: clientID });
  }
  $('text').value = '';
  scheduleRender();
}

function startEdit(m) {
  state.editing = m.id;
  $('editing').hidden = false;
  $('text').value = m.text;
  $('text').focus();
}

function cancelEdit() {
  state.editing = null;
  $('editing').hidden = true;
}

function react(m, emoji) {
  const mine = m.reactions.get(emoji)?.has(state.user);
  send({ type: 'react', room: state.current, message_id: m.id, emoji, remove: !!mine });
}

// ---- rendering ----

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function render() {
  const rooms = $('rooms');
  rooms.replaceChildren(...[...state.rooms.values()].map((r) => {
    const li = el('li', { className: r.name === state.current ? 'active' : '', title: 'double-click to leave' },
      el('span', { textContent: '#' + r.name }),
      r.unread ? el('span', { className: 'badge', textContent: String(r.unread) }) : null);
    li.onclick = () => selectRoom(r.name);
    li.ondblclick = () => confirm(`Leave #${r.name}?`) && leaveRoom(r.name);
    return li;
  }));
  $('leaderboard').replaceChildren(...state.leaderboard.slice(0, 5).map((e) => el('li', { textContent: `${e.user} · ${e.score}` })));

  const room = state.rooms.get(state.current);
  setStatus(!!state.ws && state.ws.readyState === WebSocket.OPEN);
  $('room-title').textContent = room ? '#' + room.name : 'Join a room to start';
  $('presence').replaceChildren(...(room ? room.presence : []).map((u) => el('li', { textContent: u })));
  $('online-count').textContent = room ? `(${room.presence.length})` : '';

  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const nodes = room ? room.items.map(renderItem) : [];
  if (room) {
    for (const p of state.pending.values()) {
      if (p.room !== room.name) continue;
      nodes.push(el('li', { className: 'msg mine pending' },
        el('div', { className: 'meta' }, el('span', { className: 'user', textContent: state.user }), el('span', { textContent: p.acked ? 'sent' : 'sending…' })),
        el('div', { className: 'text', textContent: p.text })));
    }
  }
  list.replaceChildren(...nodes);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderItem(m) {
  const pos = el('span', { className: 'pos', textContent: `${m.partition}:${m.offset}`, title: 'partition:offset in the log' });
  if (m.system) return el('li', { className: 'system' }, m.system + ' · ', pos);
  const mine = m.user === state.user;
  const mention = !mine && new RegExp(`(^|[^\\w@])@${state.user.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(m.text);
  const li = el('li', { className: ['msg', mine && 'mine', mention && 'mention', m.deleted && 'deleted'].filter(Boolean).join(' ') });
  li.append(el('div', { className: 'meta' },
    el('span', { className: 'user', textContent: m.user }),
    el('time', { textContent: new Date(m.ts).toLocaleTimeString(), dateTime: new Date(m.ts).toISOString() }),
    pos,
    m.edited && !m.deleted ? el('span', { textContent: '(edited)' }) : null));
  li.append(el('div', { className: 'text', textContent: m.deleted ? 'message deleted' : m.text }));
  if (!m.deleted) {
    const actions = el('div', { className: 'actions' });
    for (const e of EMOJIS) {
      const b = el('button', { textContent: e, title: 'react' });
      b.onclick = () => react(m, e);
      actions.append(b);
    }
    if (mine) {
      const edit = el('button', { textContent: 'edit' });
      edit.onclick = () => startEdit(m);
      const del = el('button', { textContent: 'delete' });
      del.onclick = () => confirm('Delete this message?') && send({ type: 'delete', room: state.current, message_id: m.id });
      actions.append(edit, del);
    }
    li.append(actions);
  }
  if (m.reactions.size) {
    li.append(el('div', { className: 'reactions' }, ...[...m.reactions].map(([emoji, users]) => {
      const b = el('button', { className: users.has(state.user) ? 'me' : '', textContent: `${emoji} ${users.size}`, title: [...users].join(', ') });
      b.onclick = () => react(m, emoji);
      return b;
    })));
  }
  return li;
}

let toastTimer = null;
function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
}

// ---- wiring ----

$('login-form').onsubmit = (e) => {
  e.preventDefault();
  $('login-error').textContent = '';
  signIn($('token').value.trim());
};
$('logout').onclick = signOut;
$('join-form').onsubmit = (e) => {
  e.preventDefault();
  joinRoom($('join-room').value.trim());
  $('join-room').value = '';
};
$('composer').onsubmit = (e) => {
  e.preventDefault();
  submitText();
};
$('text').onkeydown = (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    submitText();
  } else if (e.key === 'Escape') {
    cancelEdit();
    $('text').value = '';
  }
};
$('cancel-edit').onclick = () => {
  cancelEdit();
  $('text').value = '';
};

// A token in the URL fragment (#token=…&room=…) signs in directly (and
// joins the room); the fragment is then removed from the address bar.
const hash = new URLSearchParams(location.hash.slice(1));
if (hash.has('token') || hash.has('room')) history.replaceState(null, '', location.pathname);
const token = hash.get('token') || state.token;
if (token) {
  signIn(token);
  if (state.token && hash.get('room')) joinRoom(hash.get('room'));
} else {
  showLogin();
}
