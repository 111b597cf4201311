// The signed-in session: where the token came from, and getting a new one
// before it expires.
//
// Sources, in the order start() tries them:
//   ?token=JWT      in the page's address (removed from it at once);
//   a saved token   from an earlier visit (localStorage), if still valid;
//   postMessage     from the app that frames the page: it posts
//                   {type:"rtstack:token", token} to this window;
//   dev login       POST /api/dev/login {name} under `rtstack dev`;
//   a pasted token  (the sign-in screen).
// Before expiry a dev token is renewed from the dev endpoint and an embedded
// page posts {type:"rtstack:token-needed"} to its parent, which answers with
// a new rtstack:token message. See docs/web.md.

import { errorOf } from './api.js';

const KEY = 'rtstack.session';

export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

export function tokenProblem(token) {
  const c = claimsOf(token);
  if (!c || !c.sub) return 'That does not look like an rtstack token.';
  if (c.exp && c.exp * 1000 <= Date.now()) return 'This token has expired.';
  return '';
}

export class Auth extends EventTarget {
  constructor(config) {
    super();
    this.config = config;
    this.embedded = window.parent !== window;
    this.token = '';
    this.claims = null;
    this.source = '';
    this.timer = 0;
    this.pending = null; // the refresh in progress
    this.waiters = []; // resolvers of an embedder's next token
    window.addEventListener('message', (e) => this.onMessage(e));
  }

  get user() { return this.claims ? this.claims.sub : ''; }
  get name() { return this.claims ? this.claims.name || this.claims.sub : ''; }

  // start signs in from the address, storage or the embedder; false means
  // the sign-in screen is needed.
  async start() {
    const url = new URL(location.href);
    const fromURL = url.searchParams.get('token');
    if (fromURL) {
      url.searchParams.delete('token');
      history.replaceState(null, '', url.pathname + url.search + url.hash);
      if (!tokenProblem(fromURL)) return this.set(fromURL, 'url');
    }
    try {
      const saved = JSON.parse(localStorage.getItem(KEY) || 'null');
      if (saved && !tokenProblem(saved.token)) return this.set(saved.token, saved.source);
    } catch { /* a damaged entry is ignored */ }
    if (this.embedded) {
      const token = await this.askEmbedder('rtstack:ready', 3000);
      if (token) return this.set(token, 'embed');
    }
    return false;
  }

  set(token, source) {
    const problem = tokenProblem(token);
    if (problem) throw new Error(problem);
    const before = this.user;
    this.token = token;
    this.claims = claimsOf(token);
    this.source = source;
    localStorage.setItem(KEY, JSON.stringify({ token, source }));
    this.schedule();
    this.dispatchEvent(new CustomEvent('token', { detail: { changedUser: before && before !== this.user } }));
    return true;
  }

  async devLogin(name) {
    const res = await fetch('/api/dev/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name }),
    });
    if (!res.ok) throw new Error(await errorOf(res));
    const body = await res.json();
    return this.set(body.token, 'dev');
  }

  signOut() {
    clearTimeout(this.timer);
    localStorage.removeItem(KEY);
    this.token = '';
    this.claims = null;
  }

  expiresInMs() {
    return this.claims && this.claims.exp ? this.claims.exp * 1000 - Date.now() : Infinity;
  }

  // refresh gets a new token from the session's source; it resolves to the
  // token, or '' when the source cannot renew (a pasted or ?token= one).
  refresh() {
    if (!this.pending) {
      this.pending = this.renew().finally(() => { this.pending = null; });
    }
    return this.pending;
  }

  async renew() {
    // Offline, a request would only fail: wait for the network.
    if (!navigator.onLine) await new Promise((resolve) => window.addEventListener('online', resolve, { once: true }));
    try {
      if (this.source === 'dev' && this.config.dev_login) {
        await this.devLogin(this.user);
        return this.token;
      }
      if (this.source === 'embed' && this.embedded) {
        const token = await this.askEmbedder('rtstack:token-needed', 10000);
        if (token && claimsOf(token)?.sub === this.user) {
          this.set(token, 'embed');
          return token;
        }
      }
    } catch (err) {
      console.warn('token refresh failed:', err.message);
    }
    return '';
  }

  // schedule renews the token a little before it expires (a tenth of its
  // life, at least 30 s, before), retrying every 10 s; at expiry without a
  // new one the session ends.
  schedule() {
    clearTimeout(this.timer);
    const left = this.expiresInMs();
    if (!Number.isFinite(left)) return;
    const life = this.claims.iat ? this.claims.exp * 1000 - this.claims.iat * 1000 : left;
    const early = Math.max(30000, life / 10);
    const canRenew = this.source === 'dev' || this.source === 'embed';
    const wait = canRenew ? Math.max(1000, left - early) : left;
    this.timer = setTimeout(async () => {
      if (canRenew && (await this.refresh())) return; // set() rescheduled
      if (this.expiresInMs() <= 0) {
        this.dispatchEvent(new Event('expired'));
      } else {
        this.timer = setTimeout(() => this.schedule(), 10000);
      }
    }, Math.min(wait, 2 ** 31 - 1));
  }

  askEmbedder(type, timeoutMs) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiters = this.waiters.filter((w) => w !== done); resolve(''); }, timeoutMs);
      const done = (token) => { clearTimeout(t); resolve(token); };
      this.waiters.push(done);
      // The message carries no secret, so any parent origin may read it.
      window.parent.postMessage({ type, user: this.user || undefined }, '*');
    });
  }

  onMessage(e) {
    if (!this.embedded || e.source !== window.parent) return;
    const d = e.data;
    if (!d || d.type !== 'rtstack:token' || typeof d.token !== 'string') return;
    const allowed = this.config.embed_origins || [];
    if (!allowed.includes('*') && !allowed.includes(e.origin)) {
      console.warn('rtstack: ignored a token from', e.origin, '(not in ALLOWED_ORIGINS)');
      return;
    }
    const waiters = this.waiters;
    this.waiters = [];
    if (waiters.length) {
      for (const w of waiters) w(d.token);
    } else if (!tokenProblem(d.token) && (!this.user || claimsOf(d.token).sub === this.user)) {
      this.set(d.token, 'embed'); // an unprompted renewal
    }
  }
}
