// Everything on screen: the room list, the messages, the composer, the
// details panel, and the keyboard.

import { $, h, icon, richText, fmtTime, fmtFull, fmtDay, avatar, toast } from './dom.js';
import { countersView } from './chart.js';

const EMOJIS = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏', '👀'];
const GROUP_MS = 5 * 60 * 1000;
const STATES = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

export class View {
  constructor(chat, socket) {
    this.chat = chat;
    this.socket = socket;
    this.items = new Map(); // message id → {li, sig}
    this.shownRoom = '';
    this.editing = ''; // message id being edited
    this.confirming = ''; // message id asking "delete?"
    this.pickerFor = null; // {room, id, button}
    this.wire();
  }

  // ---- events

  wire() {
    const c = this.chat;
    c.addEventListener('rooms', () => this.renderRooms());
    c.addEventListener('room', (e) => { if (e.detail === c.current) this.renderRoom(); });
    c.addEventListener('message', (e) => this.onMessage(e.detail));
    c.addEventListener('presence', (e) => { if (e.detail === c.current) { this.renderOnline(); this.renderHead(); } });
    c.addEventListener('typing', (e) => { if (e.detail === c.current) this.renderTyping(); });
    c.addEventListener('counters', (e) => { if (e.detail === c.current) this.renderCounters(); });
    c.addEventListener('leaderboard', () => this.renderBoard());
    c.addEventListener('problem', (e) => toast(e.detail, { kind: 'error' }));
    c.addEventListener('notification', (e) => this.onNotification(e.detail));
    c.addEventListener('left', (e) => this.onLeft(e.detail));
    this.socket.addEventListener('state', () => this.renderConn());

    $('composer').addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });
    const text = $('text');
    text.addEventListener('keydown', (e) => this.composerKey(e));
    text.addEventListener('input', () => {
      this.autosize(text);
      if (text.value.trim() && c.current) c.typing(c.current, () => !!text.value.trim());
      $('send').disabled = !text.value.trim();
    });
    $('join-form').addEventListener('submit', (e) => { e.preventDefault(); this.joinFromForm(); });
    $('join-lobby').addEventListener('click', () => { location.hash = '#/room/lobby'; });
    $('leave').addEventListener('click', () => { if (c.current) c.leave(c.current); });
    $('open-sidebar').addEventListener('click', () => this.drawer('sidebar', true));
    $('close-sidebar').addEventListener('click', () => this.drawer('sidebar', false));
    $('open-info').addEventListener('click', () => this.drawer('info', true));
    $('close-info').addEventListener('click', () => this.drawer('info', false));
    $('backdrop').addEventListener('click', () => this.closeDrawers());
    $('scroller').addEventListener('scroll', () => this.onScroll());
    $('messages').addEventListener('click', (e) => this.messageClick(e));
    $('picker').addEventListener('click', (e) => this.pick(e));
    $('picker').addEventListener('keydown', (e) => this.pickerKey(e));
    document.addEventListener('keydown', (e) => this.globalKey(e));
    document.addEventListener('click', (e) => {
      if (this.pickerFor && !$('picker').contains(e.target) && !e.target.closest('[data-act="react"]')) this.closePicker();
    });
    $('notify-toggle').addEventListener('click', () => this.askNotifications());
    this.renderNotifyToggle();
    setInterval(() => this.renderTyping(), 1000);
  }

  // ---- the room list

  renderRooms() {
    const c = this.chat;
    const list = $('room-list');
    const rooms = [...c.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
    list.replaceChildren(...rooms.map((r) => {
      const current = r.name === c.current;
      const label = `${r.name}${r.unread ? `, ${r.unread} unread` : ''}${r.mentioned ? ', you were mentioned' : ''}`;
      return h('li', {},
        h('a', { href: '#/room/' + encodeURIComponent(r.name), class: 'room' + (r.unread ? ' has-unread' : ''), 'aria-current': current ? 'page' : false, 'aria-label': label, dataset: { room: r.name } },
          h('span', { class: 'hash', 'aria-hidden': 'true' }, '#'),
          h('span', { class: 'room-name' }, r.name),
          r.mentioned ? h('span', { class: 'badge mention-badge', 'aria-hidden': 'true' }, '@') : null,
          r.unread ? h('span', { class: 'badge', 'aria-hidden': 'true', 'data-unread': r.unread }, r.unread > 99 ? '99+' : String(r.unread)) : null));
    }));
    $('no-rooms').hidden = rooms.length > 0;
    const others = rooms.filter((r) => r.name !== c.current);
    $('menu-badge').hidden = !others.some((r) => r.unread);
    const total = rooms.reduce((n, r) => n + r.unread, 0);
    document.title = (total ? `(${total}) ` : '') + (c.current ? `#${c.current} · ` : '') + 'rtstack';
  }

  joinFromForm() {
    const input = $('join-room');
    const name = input.value.trim().replace(/^#/, '');
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
      $('join-error').textContent = 'Room names are letters, digits, ".", "_" or "-", starting with a letter or digit.';
      input.focus();
      return;
    }
    $('join-error').textContent = '';
    input.value = '';
    location.hash = '#/room/' + encodeURIComponent(name);
  }

  onLeft(name) {
    this.items.clear();
    toast(`You left #${name}`);
    const next = [...this.chat.rooms.keys()].sort()[0];
    location.hash = next ? '#/room/' + encodeURIComponent(next) : '#/';
    if (!next) this.renderRoom();
  }

  // ---- the current room

  show(name) {
    if (this.shownRoom !== name) {
      this.items.clear();
      $('messages').replaceChildren();
      this.editing = this.confirming = '';
      this.closePicker();
      this.shownRoom = name;
      this.stickToBottom = true;
    }
    this.closeDrawers();
    this.renderRooms();
    this.renderRoom();
    this.renderOnline();
    this.renderCounters();
    this.renderBoard();
    if (name && matchMedia('(pointer: fine)').matches) $('text').focus();
  }

  renderHead() {
    const c = this.chat;
    const r = c.rooms.get(c.current);
    $('room-title').textContent = r ? '#' + r.name : 'rtstack';
    const online = r ? r.presence.length : 0;
    $('room-sub').textContent = r ? (r.joined ? `${online} online` : 'Joining…') : '';
    $('leave').hidden = !r;
    $('open-info').hidden = !r;
  }

  renderRoom() {
    const c = this.chat;
    const r = c.rooms.get(c.current);
    this.renderHead();
    $('empty').hidden = !!r;
    $('scroller').hidden = !r;
    $('composer').hidden = !r;
    $('typing').hidden = !r;
    const text = $('text');
    text.disabled = !r;
    text.placeholder = r ? `Message #${r.name}` + (this.socket.live ? '' : ' (sent when you are back online)') : '';
    $('send').disabled = !r || !text.value.trim();
    if (!r) return;
    const scroller = $('scroller');
    const nearBottom = this.stickToBottom || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    this.renderMessages(r);
    const state = $('history-state');
    if (r.loading) state.textContent = 'Loading messages…';
    else if (r.loaded && !r.hasMore) state.textContent = r.order.length ? `This is the start of #${r.name}.` : `No messages in #${r.name} yet. Say hello!`;
    else state.textContent = '';
    this.renderTyping();
    if (nearBottom) scroller.scrollTop = scroller.scrollHeight;
    this.stickToBottom = false;
  }

  renderMessages(r) {
    const me = this.chat.me;
    const ol = $('messages');
    const want = [];
    let prev = null;
    for (const id of r.order) {
      const m = r.msgs.get(id);
      const day = fmtDay(m.ts);
      if (!prev || fmtDay(prev.ts) !== day) want.push(this.keyed('day:' + day, day, () => h('li', { class: 'day', role: 'separator' }, h('span', {}, day))));
      const first = !prev || prev.user !== m.user || m.ts - prev.ts > GROUP_MS || fmtDay(prev.ts) !== day;
      const sig = [m.rev, m.deleted, m.edited, first, this.editing === id, this.confirming === id, JSON.stringify(m.reactions), m.text].join('|');
      want.push(this.keyed(id, sig, () => this.messageItem(r, m, first, me)));
      prev = m;
    }
    for (const p of this.chat.pending(r.name)) {
      const sig = [p.failed, this.socket.live, r.joined].join('|');
      want.push(this.keyed('p:' + p.cid, sig, () => this.pendingItem(p, me)));
    }
    const keep = new Set(want);
    for (const [k, it] of this.items) if (!keep.has(it.li)) { it.li.remove(); this.items.delete(k); }
    let at = ol.firstChild;
    for (const li of want) {
      if (li === at) { at = at.nextSibling; continue; }
      ol.insertBefore(li, at);
    }
  }

  keyed(key, sig, build) {
    const it = this.items.get(key);
    if (it && it.sig === sig) return it.li;
    const li = build();
    if (it) it.li.replaceWith(li);
    this.items.set(key, { li, sig });
    return li;
  }

  messageItem(r, m, first, me) {
    const mine = m.user === me;
    const mentionsMe = m.mentions.includes(me) && !mine;
    const cls = ['msg', first ? 'first' : 'cont', mine ? 'mine' : '', mentionsMe ? 'mentions-me' : '', m.deleted ? 'deleted' : '', this.confirming === m.id ? 'confirming' : ''].filter(Boolean).join(' ');
    const li = h('li', { class: cls, dataset: { id: m.id, user: m.user } });
    li.append(first ? avatar(m.user) : h('span', { class: 'gutter' }, h('time', { datetime: new Date(m.ts).toISOString(), title: fmtFull(m.ts) }, fmtTime(m.ts))));
    const body = h('div', { class: 'body' });
    if (first) {
      body.append(h('div', { class: 'meta' }, h('strong', { class: 'author' }, m.user),
        h('time', { datetime: new Date(m.ts).toISOString(), title: fmtFull(m.ts) }, fmtTime(m.ts))));
    }
    if (m.deleted) {
      body.append(h('p', { class: 'text muted' }, 'This message was deleted.'));
    } else if (this.editing === m.id) {
      const ta = h('textarea', { class: 'edit-box', 'aria-label': 'Edit message', maxlength: 4096 });
      ta.value = m.text;
      ta.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); this.saveEdit(r.name, m, ta.value); }
        if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); this.stopEdit(); }
      });
      body.append(ta, h('div', { class: 'edit-actions' },
        h('button', { type: 'button', class: 'primary small', dataset: { act: 'save' } }, 'Save'),
        h('button', { type: 'button', class: 'ghost small', dataset: { act: 'cancel' } }, 'Cancel'),
        h('span', { class: 'hint' }, 'Enter to save · Esc to cancel')));
      requestAnimationFrame(() => { ta.focus(); ta.setSelectionRange(ta.value.length, ta.value.length); this.autosize(ta); });
    } else {
      body.append(h('p', { class: 'text' }, richText(m.text, me), m.edited ? h('span', { class: 'edited' }, ' (edited)') : null));
    }
    const reactions = Object.entries(m.reactions);
    if (reactions.length && !m.deleted) {
      body.append(h('div', { class: 'reactions' }, reactions.map(([emoji, users]) => {
        const minePressed = users.includes(me);
        return h('button', {
          type: 'button', class: 'chip' + (minePressed ? ' pressed' : ''), 'aria-pressed': minePressed ? 'true' : 'false',
          title: users.join(', '), 'aria-label': `${emoji} ${users.length}: ${users.join(', ')}`, dataset: { act: 'toggle', emoji },
        }, h('span', { class: 'emoji' }, emoji), h('span', { class: 'n' }, String(users.length)));
      })));
    }
    li.append(body);
    if (!m.deleted && this.editing !== m.id) {
      const tools = h('div', { class: 'tools', role: 'toolbar', 'aria-label': 'Message actions' },
        h('button', { type: 'button', class: 'tool', 'aria-label': 'Add a reaction', title: 'React', dataset: { act: 'react' }, 'aria-haspopup': 'menu' }, icon('smile')));
      if (mine) {
        if (this.confirming === m.id) {
          tools.append(h('span', { class: 'confirm' }, 'Delete?'),
            h('button', { type: 'button', class: 'tool danger', dataset: { act: 'delete-yes' } }, 'Delete'),
            h('button', { type: 'button', class: 'tool', dataset: { act: 'delete-no' } }, 'Keep'));
        } else {
          tools.append(h('button', { type: 'button', class: 'tool', 'aria-label': 'Edit message', title: 'Edit', dataset: { act: 'edit' } }, icon('edit')),
            h('button', { type: 'button', class: 'tool', 'aria-label': 'Delete message', title: 'Delete', dataset: { act: 'delete' } }, icon('trash')));
        }
      }
      li.append(tools);
    }
    return li;
  }

  pendingItem(p, me) {
    const status = p.failed ? `Not sent: ${p.failed}` : this.socket.live ? 'Sending…' : 'Waiting for the connection…';
    return h('li', { class: 'msg first mine pending' + (p.failed ? ' failed' : ''), dataset: { cid: p.cid } },
      avatar(me),
      h('div', { class: 'body' },
        h('div', { class: 'meta' }, h('strong', { class: 'author' }, me), h('span', { class: 'status-note' }, status)),
        h('p', { class: 'text' }, richText(p.text, me)),
        p.failed ? h('div', { class: 'edit-actions' },
          h('button', { type: 'button', class: 'ghost small', dataset: { act: 'retry' } }, 'Retry'),
          h('button', { type: 'button', class: 'ghost small', dataset: { act: 'discard' } }, 'Discard')) : null));
  }

  onMessage({ room, mine }) {
    if (room === this.chat.current && mine) this.stickToBottom = true;
  }

  onScroll() {
    const s = $('scroller');
    if (s.scrollTop < 150) this.older();
  }

  async older() {
    const c = this.chat;
    const r = c.rooms.get(c.current);
    if (!r || r.loading || !r.hasMore || !r.loaded) return;
    const s = $('scroller');
    const fromBottom = s.scrollHeight - s.scrollTop;
    await c.loadOlder(r.name);
    s.scrollTop = s.scrollHeight - fromBottom; // keep what was on screen in place
  }

  // ---- actions on messages

  messageClick(e) {
    const btn = e.target.closest('button[data-act]');
    if (!btn) {
      // On touch screens a tap on a message shows its actions.
      const li = e.target.closest('li.msg');
      for (const t of $('messages').querySelectorAll('.touched')) if (t !== li) t.classList.remove('touched');
      if (li) li.classList.toggle('touched');
      return;
    }
    const li = btn.closest('li');
    const c = this.chat;
    const room = c.current;
    const id = li.dataset.id;
    const cid = li.dataset.cid;
    const m = id && c.rooms.get(room)?.msgs.get(id);
    switch (btn.dataset.act) {
      case 'react': return this.openPicker(room, id, btn);
      case 'toggle': return c.react(room, id, btn.dataset.emoji);
      case 'edit': this.editing = id; this.confirming = ''; return this.renderRoom();
      case 'save': return this.saveEdit(room, m, li.querySelector('textarea').value);
      case 'cancel': return this.stopEdit();
      case 'delete':
        this.confirming = id;
        this.renderRoom(); // rebuilds the item: focus the new one's button
        return $('messages').querySelector(`li[data-id="${CSS.escape(id)}"] [data-act="delete-yes"]`)?.focus();
      case 'delete-yes': this.confirming = ''; return c.remove(room, id);
      case 'delete-no': this.confirming = ''; return this.renderRoom();
      case 'retry': return c.retrySend(cid);
      case 'discard': return c.discard(cid);
      default: return undefined;
    }
  }

  saveEdit(room, m, text) {
    text = text.trim();
    if (text && m && text !== m.text) this.chat.edit(room, m.id, text);
    this.stopEdit();
  }

  stopEdit() {
    this.editing = '';
    this.renderRoom();
    $('text').focus();
  }

  openPicker(room, id, button) {
    const p = $('picker');
    if (this.pickerFor && this.pickerFor.id === id) return this.closePicker();
    this.pickerFor = { room, id, button };
    const m = this.chat.rooms.get(room)?.msgs.get(id);
    p.replaceChildren(...EMOJIS.map((e) => {
      const mine = m && (m.reactions[e] || []).includes(this.chat.me);
      return h('button', { type: 'button', role: 'menuitem', class: mine ? 'pressed' : '', 'aria-label': (mine ? 'Remove ' : 'React with ') + e, dataset: { emoji: e } }, e);
    }));
    p.hidden = false;
    const b = button.getBoundingClientRect();
    const w = p.offsetWidth;
    const ht = p.offsetHeight;
    const left = Math.max(8, Math.min(window.innerWidth - w - 8, b.right - w));
    const top = b.top - ht - 6 > 8 ? b.top - ht - 6 : b.bottom + 6;
    p.style.left = left + 'px';
    p.style.top = top + 'px';
    p.firstElementChild.focus();
    return undefined;
  }

  closePicker() {
    if (!this.pickerFor) return;
    const { button } = this.pickerFor;
    this.pickerFor = null;
    $('picker').hidden = true;
    if (button && button.isConnected && document.activeElement && $('picker').contains(document.activeElement)) button.focus();
  }

  pick(e) {
    const b = e.target.closest('button[data-emoji]');
    if (!b || !this.pickerFor) return;
    const { room, id } = this.pickerFor;
    this.chat.react(room, id, b.dataset.emoji);
    this.closePicker();
  }

  pickerKey(e) {
    const buttons = [...$('picker').querySelectorAll('button')];
    const i = buttons.indexOf(document.activeElement);
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') { e.preventDefault(); buttons[(i + 1) % buttons.length].focus(); }
    if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') { e.preventDefault(); buttons[(i - 1 + buttons.length) % buttons.length].focus(); }
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); this.closePicker(); }
  }

  // ---- composer

  submit() {
    const c = this.chat;
    const text = $('text');
    const value = text.value.trim();
    if (!value || !c.current) return;
    if (new TextEncoder().encode(value).length > 4096) {
      toast('That message is over 4096 bytes: shorten it.', { kind: 'error' });
      return;
    }
    this.stickToBottom = true;
    c.send(c.current, value);
    text.value = '';
    this.autosize(text);
    $('send').disabled = true;
  }

  composerKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    } else if (e.key === 'ArrowUp' && !e.target.value) {
      // Up in an empty composer edits one's last message, as in most chats.
      const r = this.chat.rooms.get(this.chat.current);
      const id = r && [...r.order].reverse().find((x) => { const m = r.msgs.get(x); return m.user === this.chat.me && !m.deleted; });
      if (id) { e.preventDefault(); this.editing = id; this.renderRoom(); }
    }
  }

  autosize(ta) {
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight, 200) + 'px';
  }

  renderTyping() {
    const c = this.chat;
    const names = c.current ? c.typers(c.current) : [];
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = 'Several people are typing…';
    const el = $('typing');
    if (el.textContent !== text) el.textContent = text;
  }

  // ---- details: online, activity, leaderboard

  renderOnline() {
    const r = this.chat.rooms.get(this.chat.current);
    const users = r ? r.presence : [];
    $('online-count').textContent = users.length ? String(users.length) : '';
    $('online').replaceChildren(...users.map((u) => h('li', { dataset: { user: u } }, avatar(u, 'avatar small'), h('span', {}, u),
      u === this.chat.me ? h('span', { class: 'hint' }, ' (you)') : null)));
    if (!users.length) $('online').append(h('li', { class: 'hint' }, r ? 'Nobody yet' : ''));
  }

  renderCounters() {
    const r = this.chat.rooms.get(this.chat.current);
    $('counters').replaceChildren(r ? countersView(r.counters) : '');
  }

  renderBoard() {
    const entries = this.chat.leaderboard;
    $('leaderboard').replaceChildren(...entries.map((e, i) => h('li', { dataset: { user: e.user } },
      h('span', { class: 'rank' }, String(i + 1)), avatar(e.user, 'avatar small'), h('span', { class: 'who' }, e.user),
      h('span', { class: 'score', 'aria-label': `${e.score} messages` }, String(e.score)))));
    if (!entries.length) $('leaderboard').append(h('li', { class: 'hint' }, 'No messages yet'));
  }

  // ---- connection, notifications

  renderConn() {
    const s = this.socket.state;
    const el = $('conn');
    el.dataset.state = s;
    $('conn-text').textContent = STATES[s] || s;
    this.renderRoom();
  }

  onNotification(n) {
    if (n.kind !== 'mention') return;
    const c = this.chat;
    const here = n.room === c.current && !document.hidden;
    const open = () => { window.focus(); location.hash = '#/room/' + encodeURIComponent(n.room); };
    if (!here) toast(`${n.from} mentioned you in #${n.room}`, { kind: 'mention', action: { label: 'Open', run: open } });
    if ((document.hidden || !here) && 'Notification' in window && Notification.permission === 'granted') {
      const note = new Notification(`${n.from} in #${n.room}`, { body: n.text, tag: n.message_id, icon: 'icon-192.png' });
      note.onclick = () => { open(); note.close(); };
    }
  }

  async askNotifications() {
    if (!('Notification' in window)) return toast('This browser cannot show notifications.');
    if (Notification.permission === 'default') await Notification.requestPermission();
    this.renderNotifyToggle();
    toast(Notification.permission === 'granted' ? 'You will be notified when mentioned.' : 'Notifications are blocked in this browser’s site settings.');
    return undefined;
  }

  renderNotifyToggle() {
    const on = 'Notification' in window && Notification.permission === 'granted';
    const b = $('notify-toggle');
    b.classList.toggle('on', on);
    b.setAttribute('aria-pressed', on ? 'true' : 'false');
    b.setAttribute('aria-label', on ? 'Notifications for mentions are on' : 'Turn on notifications for mentions');
  }

  // ---- drawers (phone and tablet) and keyboard

  drawer(id, open) {
    const el = $(id);
    el.classList.toggle('open', open);
    $(id === 'sidebar' ? 'open-sidebar' : 'open-info').setAttribute('aria-expanded', String(open));
    $('backdrop').hidden = !document.querySelector('.sidebar.open, .info.open');
    if (open) (el.querySelector('a, button, input') || el).focus();
  }

  closeDrawers() {
    for (const id of ['sidebar', 'info']) if ($(id).classList.contains('open')) this.drawer(id, false);
  }

  globalKey(e) {
    if (e.key === 'Escape') {
      if (this.pickerFor) return this.closePicker();
      if (this.confirming) { this.confirming = ''; return this.renderRoom(); }
      if (document.querySelector('.sidebar.open, .info.open')) return this.closeDrawers();
    }
    // Alt+↑/↓ moves between rooms; Ctrl/Cmd+K jumps to "join a room".
    if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      const names = [...this.chat.rooms.keys()].sort();
      const i = names.indexOf(this.chat.current);
      const next = names[(i + (e.key === 'ArrowDown' ? 1 : -1) + names.length) % names.length];
      if (next) { e.preventDefault(); location.hash = '#/room/' + encodeURIComponent(next); }
    }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
      e.preventDefault();
      if (getComputedStyle($('open-sidebar')).display !== 'none') this.drawer('sidebar', true);
      $('join-room').focus();
    }
    return undefined;
  }
}
