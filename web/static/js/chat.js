// The chat's state and its protocol with the gateway (docs/protocol.md):
// rooms and their messages, recovery after a reconnect, the outbox of
// messages not yet acknowledged, typing, presence and the live channels.
//
// Positions ({partition, offset}) are kept per room only to recover with
// `since`; they are never shown.

import { randomId } from './dom.js';

const TYPING_SHOWN_MS = 5000; // how long "x is typing" stays without news
const TYPING_SEND_MS = 2500; // at most one typing frame per room this often
const PAGE = 50;

function newRoom(name, saved = {}) {
  return {
    name,
    joined: false, // on the current connection
    joinRef: '', // client_id of the join in flight
    joinPos: null, // position of this connection's join, from its ack
    last: saved.last || null, // last event position seen (for since)
    unread: saved.unread || 0,
    mentioned: !!saved.mentioned,
    msgs: new Map(), // message_id → message
    order: [], // message ids by offset
    loaded: false, // history fetched since the room was (re)joined
    loading: false,
    hasMore: true, // older messages may exist
    presence: [],
    typing: new Map(), // user → until (ms)
    counters: null,
    typedAt: 0,
    typingTimer: 0,
  };
}

function later(a, b) {
  if (!a) return b;
  if (!b) return a;
  return b.offset > a.offset ? b : a;
}

export class Chat extends EventTarget {
  constructor(auth, socket, api) {
    super();
    this.auth = auth;
    this.socket = socket;
    this.api = api;
    this.rooms = new Map();
    this.current = '';
    this.leaderboard = [];
    this.outbox = new Map(); // client_id → {room, text, ts, failed}
    this.refs = new Map(); // client_id → what to do with its ack or error
    this.counterRoom = '';
    this.restore();
    socket.addEventListener('open', () => this.onOpen());
    socket.addEventListener('close', () => this.onClose());
    socket.addEventListener('frame', (e) => this.onFrame(e.detail));
    document.addEventListener('visibilitychange', () => { if (!document.hidden) this.markRead(this.current); });
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  get me() { return this.auth.user; }

  // ---- local storage: joined rooms with unread counts and positions, and
  // the outbox, so a reload loses neither.

  storeKey(what) { return `rtstack.${this.me}.${what}`; }

  restore() {
    try {
      for (const r of JSON.parse(localStorage.getItem(this.storeKey('rooms')) || '[]')) {
        if (r && r.name) this.rooms.set(r.name, newRoom(r.name, r));
      }
      for (const [cid, m] of JSON.parse(localStorage.getItem(this.storeKey('outbox')) || '[]')) {
        if (this.rooms.has(m.room)) this.outbox.set(cid, m);
      }
    } catch { /* damaged storage: start empty */ }
  }

  save() {
    const rooms = [...this.rooms.values()].map((r) => ({ name: r.name, unread: r.unread, mentioned: r.mentioned, last: r.last }));
    localStorage.setItem(this.storeKey('rooms'), JSON.stringify(rooms));
    localStorage.setItem(this.storeKey('outbox'), JSON.stringify([...this.outbox]));
  }

  // ---- connection

  onOpen() {
    this.socket.send({ type: 'subscribe', channel: 'leaderboard' });
    this.counterRoom = '';
    for (const r of this.rooms.values()) this.join(r);
    this.subscribeCounters();
  }

  onClose() {
    for (const r of this.rooms.values()) {
      r.joined = false;
      r.joinRef = '';
      r.typing.clear();
    }
    this.refs.clear();
    this.counterRoom = '';
    this.emit('rooms');
    if (this.current) this.emit('room', this.current);
  }

  join(r) {
    if (r.joined || r.joinRef || !this.socket.live) return;
    r.joinRef = randomId('j-');
    const frame = { type: 'join', room: r.name, client_id: r.joinRef };
    // Everything up to our last join was seen live or is in the history
    // loaded after it, so either position is a valid since.
    const since = later(r.last, r.joinPos);
    if (since) frame.since = { partition: since.partition, offset: since.offset };
    this.refs.set(r.joinRef, { kind: 'join', room: r.name });
    this.socket.send(frame);
  }

  // ---- rooms

  open(name) {
    let r = this.rooms.get(name);
    if (!r) {
      r = newRoom(name);
      this.rooms.set(name, r);
      this.save();
    }
    this.join(r); // a no-op when joined or joining
    this.current = name;
    this.markRead(name);
    this.subscribeCounters();
    if (r.joined && !r.loaded) this.loadHistory(r);
    this.emit('rooms');
    this.emit('room', name);
    return r;
  }

  leave(name) {
    const r = this.rooms.get(name);
    if (!r) return;
    if (r.joined) {
      const cid = randomId('l-');
      this.refs.set(cid, { kind: 'leave', room: name });
      this.socket.send({ type: 'leave', room: name, client_id: cid });
    }
    this.forget(name);
  }

  forget(name) {
    this.rooms.delete(name);
    for (const [cid, m] of this.outbox) if (m.room === name) this.outbox.delete(cid);
    if (this.current === name) this.current = '';
    this.save();
    this.subscribeCounters();
    this.emit('rooms');
    this.emit('left', name);
  }

  markRead(name) {
    const r = this.rooms.get(name);
    if (!r || document.hidden || (!r.unread && !r.mentioned)) return;
    r.unread = 0;
    r.mentioned = false;
    this.save();
    this.emit('rooms');
  }

  subscribeCounters() {
    const want = this.rooms.get(this.current)?.joined ? this.current : '';
    if (want === this.counterRoom || !this.socket.live) return;
    if (this.counterRoom) this.socket.send({ type: 'unsubscribe', channel: 'counters', room: this.counterRoom });
    if (want) this.socket.send({ type: 'subscribe', channel: 'counters', room: want });
    this.counterRoom = want;
  }

  // ---- history

  // loadHistory reloads the newest page. after= makes the projection show
  // at least everything this client has already seen, so history and the
  // live stream meet with no gap.
  async loadHistory(r) {
    if (r.loading) return;
    r.loading = true;
    this.emit('room', r.name);
    try {
      const after = later(r.last, r.joinPos);
      const { messages, position } = await this.api.history(r.name, { limit: PAGE, after });
      if (!this.rooms.has(r.name)) return;
      this.merge(r, messages, position);
      r.loaded = true;
      r.hasMore = messages.length === PAGE;
    } catch (err) {
      this.emit('problem', `Could not load #${r.name}: ${err.message}`);
    } finally {
      r.loading = false;
      this.emit('room', r.name);
    }
  }

  async loadOlder(name) {
    const r = this.rooms.get(name);
    if (!r || r.loading || !r.loaded || !r.hasMore || !r.order.length) return;
    r.loading = true;
    this.emit('room', name);
    try {
      const { messages, position } = await this.api.history(name, { limit: PAGE, before: r.order[0] });
      this.merge(r, messages, position);
      r.hasMore = messages.length === PAGE;
      this.emit('older', name);
    } catch (err) {
      this.emit('problem', `Could not load older messages: ${err.message}`);
    } finally {
      r.loading = false;
      this.emit('room', name);
    }
  }

  // merge adds history messages. A message the live stream changed after
  // the history's position keeps the live version.
  merge(r, list, position) {
    for (const hm of list) {
      const seen = position[hm.partition] ?? -1;
      const have = r.msgs.get(hm.message_id);
      if (have && have.rev > seen) continue;
      const m = {
        id: hm.message_id, user: hm.user, text: hm.text, ts: hm.ts, offset: hm.offset, partition: hm.partition,
        edited: hm.edited, deleted: hm.deleted, reactions: hm.reactions || {}, mentions: hm.mentions || [],
        rev: Math.max(hm.offset, seen),
      };
      r.msgs.set(m.id, m);
    }
    // An acknowledged message whose live frame this client missed (a
    // resync) is in the history now: it is no longer pending.
    for (const [cid, m] of this.outbox) if (m.messageId && r.msgs.has(m.messageId)) this.outbox.delete(cid);
    this.sort(r);
  }

  sort(r) {
    r.order = [...r.msgs.values()].sort((a, b) => a.offset - b.offset).map((m) => m.id);
  }

  // ---- sending

  send(name, text) {
    const cid = randomId('m-');
    this.outbox.set(cid, { room: name, text, ts: Date.now(), failed: '' });
    this.save();
    this.flushOne(cid);
    this.emit('room', name);
    return cid;
  }

  flushOne(cid) {
    const m = this.outbox.get(cid);
    const r = m && this.rooms.get(m.room);
    if (!r || !r.joined || m.failed) return;
    this.refs.set(cid, { kind: 'send', room: m.room });
    this.socket.send({ type: 'send', room: m.room, text: m.text, client_id: cid });
  }

  // flush resends the room's unacknowledged messages with their first
  // client_id: the gateway appends each once however often it is resent.
  flush(r) {
    for (const [cid, m] of this.outbox) if (m.room === r.name && !this.refs.has(cid)) this.flushOne(cid);
  }

  discard(cid) {
    const m = this.outbox.get(cid);
    if (!m) return;
    this.outbox.delete(cid);
    this.save();
    this.emit('room', m.room);
  }

  retrySend(cid) {
    const m = this.outbox.get(cid);
    if (!m) return;
    m.failed = '';
    this.save();
    this.flushOne(cid);
    this.emit('room', m.room);
  }

  pending(name) {
    return [...this.outbox].filter(([, m]) => m.room === name).map(([cid, m]) => ({ cid, ...m }));
  }

  action(frame, tries = 0) {
    const cid = randomId('a-');
    this.refs.set(cid, { kind: frame.type, room: frame.room, frame, tries });
    if (!this.socket.send({ ...frame, client_id: cid })) this.emit('problem', 'You are offline: try again when connected.');
  }

  edit(room, id, text) { this.action({ type: 'edit', room, message_id: id, text }); }
  remove(room, id) { this.action({ type: 'delete', room, message_id: id }); }
  react(room, id, emoji) {
    const m = this.rooms.get(room)?.msgs.get(id);
    const mine = m && (m.reactions[emoji] || []).includes(this.me);
    this.action({ type: 'react', room, message_id: id, emoji, remove: !!mine });
  }

  // typing tells the room this user is typing, at most every
  // TYPING_SEND_MS (the gateway refuses more than one per 2 s). Typing
  // sooner than that is announced when the time comes, if stillTyping().
  typing(name, stillTyping) {
    const r = this.rooms.get(name);
    if (!r || !r.joined) return;
    const wait = r.typedAt + TYPING_SEND_MS - Date.now();
    if (wait > 0) {
      if (!r.typingTimer) {
        r.typingTimer = setTimeout(() => {
          r.typingTimer = 0;
          if (stillTyping() && this.current === name) this.typing(name, stillTyping);
        }, wait);
      }
      return;
    }
    r.typedAt = Date.now();
    this.socket.send({ type: 'typing', room: name });
  }

  typers(name) {
    const r = this.rooms.get(name);
    if (!r) return [];
    const now = Date.now();
    for (const [u, until] of r.typing) if (until <= now) r.typing.delete(u);
    return [...r.typing.keys()].sort();
  }

  // ---- frames from the server

  onFrame(f) {
    switch (f.type) {
      case 'message': case 'edited': case 'deleted': case 'reaction': case 'joined': case 'left':
        return this.onEvent(f);
      case 'ack': return this.onAck(f);
      case 'error': return this.onError(f);
      case 'resync': return this.onResync(f);
      case 'presence': return this.onPresence(f);
      case 'typing': return this.onTyping(f);
      case 'counters': return this.onCounters(f);
      case 'leaderboard':
        this.leaderboard = f.entries || [];
        return this.emit('leaderboard');
      case 'notification': return this.emit('notification', f);
      case 'token_expiring': return this.onTokenExpiring(f);
      case 'token_refreshed': return undefined;
      default:
        return undefined; // frames of later servers are ignored
    }
  }

  onEvent(f) {
    const r = this.rooms.get(f.room);
    if (!r) return;
    const pos = { partition: f.partition, offset: f.offset };
    if (r.last && r.last.partition === pos.partition && pos.offset <= r.last.offset) return; // seen
    r.last = pos;
    const m = f.message_id ? r.msgs.get(f.message_id) : null;
    switch (f.type) {
      case 'message': {
        r.typing.delete(f.user);
        if (f.user === this.me && f.client_id && this.outbox.delete(f.client_id)) this.refs.delete(f.client_id);
        if (m) break; // already from history
        r.msgs.set(f.message_id, {
          id: f.message_id, user: f.user, text: f.text, ts: f.ts, offset: f.offset, partition: f.partition,
          edited: false, deleted: false, reactions: {}, mentions: f.mentions || [], rev: f.offset,
        });
        r.order.push(f.message_id);
        if (r.order.length > 1 && r.msgs.get(r.order.at(-2)).offset > f.offset) this.sort(r);
        if (f.user !== this.me && (f.room !== this.current || document.hidden)) {
          r.unread++;
          if ((f.mentions || []).includes(this.me)) r.mentioned = true;
          this.emit('rooms');
        }
        this.emit('message', { room: f.room, id: f.message_id, mine: f.user === this.me });
        break;
      }
      case 'edited':
        if (m) Object.assign(m, { text: f.text, edited: true, rev: f.offset });
        break;
      case 'deleted':
        if (m) Object.assign(m, { deleted: true, rev: f.offset });
        break;
      case 'reaction':
        if (m) {
          const users = new Set(m.reactions[f.emoji] || []);
          if (f.removed) users.delete(f.user); else users.add(f.user);
          if (users.size) m.reactions[f.emoji] = [...users].sort(); else delete m.reactions[f.emoji];
          m.rev = f.offset;
        }
        break;
      default:
        break; // joined / left only move the position
    }
    this.saveSoon();
    this.emit('room', f.room);
  }

  saveSoon() {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = 0; this.save(); }, 300);
  }

  onAck(f) {
    const ref = this.refs.get(f.client_id);
    if (!ref) return;
    this.refs.delete(f.client_id);
    const r = this.rooms.get(ref.room);
    if (ref.kind === 'join' && r) {
      r.joined = true;
      r.joinRef = '';
      r.joinPos = { partition: f.partition, offset: f.offset };
      if (r.name === this.current) {
        if (!r.loaded) this.loadHistory(r);
        this.subscribeCounters();
      }
      this.flush(r);
      this.emit('room', r.name);
      this.emit('rooms');
    } else if (ref.kind === 'send' && r) {
      const m = this.outbox.get(f.client_id);
      if (m) m.messageId = f.message_id;
    }
  }

  onError(f) {
    const ref = f.ref ? this.refs.get(f.ref) : null;
    if (f.ref) this.refs.delete(f.ref);
    if (!ref) {
      if (f.code !== 'rate_limited') this.emit('problem', f.message);
      return;
    }
    const r = this.rooms.get(ref.room);
    if (ref.kind === 'join' && r) {
      r.joinRef = '';
      if (f.code === 'already_joined') {
        r.joined = true;
        this.flush(r);
      } else if (['bad_room', 'forbidden', 'invalid'].includes(f.code)) {
        this.emit('problem', `Cannot join #${r.name}: ${f.message}`);
        this.forget(r.name);
      } else {
        setTimeout(() => this.join(r), 2000); // unavailable and the like
      }
      this.emit('rooms');
      return;
    }
    if (ref.kind === 'send') {
      const m = this.outbox.get(f.ref);
      if (!m) return;
      if (f.code === 'unavailable' || f.code === 'shutting_down' || f.code === 'rate_limited') {
        setTimeout(() => this.flushOne(f.ref), 2000);
      } else {
        m.failed = f.message;
        this.save();
        this.emit('room', m.room);
      }
      return;
    }
    // The gateway checks authorship against a projection that can be a
    // moment behind the live stream this client already saw the message in.
    if (f.code === 'unknown_message' && ref.frame && ref.tries < 5) {
      setTimeout(() => this.action(ref.frame, ref.tries + 1), 300 * (ref.tries + 1));
      return;
    }
    this.emit('problem', f.message);
  }

  // onResync: the room's position cannot be served. Start over: history
  // from the API and a join without since.
  onResync(f) {
    const r = this.rooms.get(f.room);
    if (!r) return;
    for (const [cid, ref] of this.refs) if (ref.kind === 'join' && ref.room === f.room) this.refs.delete(cid);
    r.joined = false;
    r.joinRef = '';
    r.last = null;
    r.joinPos = null;
    r.loaded = false;
    r.msgs.clear();
    r.order = [];
    this.save();
    this.join(r);
    this.emit('room', r.name);
  }

  onPresence(f) {
    const r = this.rooms.get(f.room);
    if (!r) return;
    r.presence = f.users || [];
    this.emit('presence', f.room);
  }

  onTyping(f) {
    const r = this.rooms.get(f.room);
    if (!r || f.user === this.me) return;
    r.typing.set(f.user, Date.now() + TYPING_SHOWN_MS);
    this.emit('typing', f.room);
    setTimeout(() => this.emit('typing', f.room), TYPING_SHOWN_MS + 50);
  }

  onCounters(f) {
    const r = this.rooms.get(f.room);
    if (!r) return;
    r.counters = f;
    this.emit('counters', f.room);
  }

  // onTokenExpiring: the server closes the connection (4001) at the
  // token's exp unless it gets a fresh token for the same user.
  async onTokenExpiring(f) {
    const token = await this.auth.refresh();
    if (token) {
      this.socket.send({ type: 'refresh', token });
    } else {
      this.emit('problem', `Your session ends in ${Math.max(1, Math.round((f.in_ms || 0) / 1000))} s: sign in again to keep chatting.`);
    }
  }
}
