// One WebSocket to /ws that reconnects by itself.
//
// States: connecting (first attempt), live, reconnecting (dropped; retrying
// with exponential backoff and jitter), offline (the browser says there is
// no network: it waits for it to come back instead of retrying).
// The server packs several JSON objects into one frame, one per line.

const MIN_DELAY = 500;
const MAX_DELAY = 15000;

export class Socket extends EventTarget {
  constructor(tokenFn) {
    super();
    this.tokenFn = tokenFn; // async () => token to connect with
    this.ws = null;
    this.state = 'connecting';
    this.attempt = 0;
    this.timer = 0;
    this.stopped = false;
    window.addEventListener('offline', () => this.goOffline());
    window.addEventListener('online', () => { if (this.state === 'offline') this.connectNow(); });
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.dispatchEvent(new CustomEvent('state', { detail: s }));
  }

  get live() { return this.state === 'live'; }

  async connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    if (!navigator.onLine) { this.setState('offline'); return; }
    const token = await this.tokenFn();
    if (this.stopped || this.ws) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.setState('live');
      this.dispatchEvent(new Event('open'));
    };
    ws.onmessage = (ev) => {
      for (const line of String(ev.data).split('\n')) {
        if (!line) continue;
        let f;
        try { f = JSON.parse(line); } catch { console.warn('rtstack: unreadable frame', line.slice(0, 80)); continue; }
        this.dispatchEvent(new CustomEvent('frame', { detail: f }));
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.dispatchEvent(new CustomEvent('close', { detail: { code: ev.code, opened } }));
      if (this.stopped) return;
      if (!navigator.onLine) { this.setState('offline'); return; }
      this.retry();
    };
  }

  retry() {
    this.setState(this.state === 'connecting' && this.attempt === 0 ? 'connecting' : 'reconnecting');
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    this.attempt++;
    const delay = base * (0.8 + Math.random() * 0.4);
    this.timer = setTimeout(() => this.connect(), delay);
    this.dispatchEvent(new CustomEvent('retry', { detail: { delay } }));
  }

  connectNow() {
    this.attempt = 0;
    if (!this.ws) { this.setState('reconnecting'); this.connect(); }
  }

  goOffline() {
    clearTimeout(this.timer);
    this.setState('offline');
    // A dead network may leave the socket looking open for a long time:
    // close it now, so what is typed meanwhile is queued, not lost.
    const ws = this.ws;
    if (ws) {
      this.ws = null;
      ws.close();
      this.dispatchEvent(new CustomEvent('close', { detail: { code: 1006, opened: true } }));
    }
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
  }
}
