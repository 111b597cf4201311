// The HTTP API (docs/http.md) with the session's token.

// errorOf is the message of an error response: {"error":{"code","message"}}
// (or, from older servers, {"error":"message"}).
export async function errorOf(res) {
  const body = await res.json().catch(() => ({}));
  const e = body.error;
  return (e && (e.message || (typeof e === 'string' && e))) || `HTTP ${res.status}`;
}

export class API {
  constructor(auth) { this.auth = auth; }

  async get(path, params = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
    const url = path + (q.size ? '?' + q : '');
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(url, { headers: { Authorization: 'Bearer ' + this.auth.token } });
      if (res.ok) return { body: await res.json(), headers: res.headers };
      // 409: the projection is a moment behind what this client saw live.
      if (res.status === 409 && attempt < 5) {
        await new Promise((r) => setTimeout(r, 250 * (attempt + 1)));
        continue;
      }
      if (res.status === 401 && attempt === 0 && (await this.auth.refresh())) continue;
      throw new Error(await errorOf(res));
    }
  }

  // history returns messages oldest first and the projection's position
  // per partition (X-Rtstack-Position "0:17,1:4").
  async history(room, { limit, before, after }) {
    const { body, headers } = await this.get(`/api/rooms/${encodeURIComponent(room)}/messages`, {
      limit, before, after: after ? `${after.partition}:${after.offset}` : '',
    });
    const position = {};
    for (const pair of (headers.get('X-Rtstack-Position') || '').split(',')) {
      const [p, o] = pair.split(':').map(Number);
      if (Number.isInteger(p) && Number.isInteger(o)) position[p] = o;
    }
    return { messages: body.messages || [], position };
  }
}
