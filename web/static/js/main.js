// rtstack chat: boot, sign-in and routing (#/room/NAME).

import { $, avatar, ROOM_RE, toast } from './dom.js';
import { Auth, tokenProblem } from './auth.js';
import { Socket } from './socket.js';
import { API } from './api.js';
import { Chat } from './chat.js';
import { View } from './view.js';

async function loadConfig() {
  try {
    const res = await fetch('config.json');
    if (res.ok) return await res.json();
  } catch { /* an older server: no dev login, no embedding */ }
  return { dev_login: false, embed_origins: [] };
}

function screen(id) {
  for (const s of ['boot', 'signin', 'app']) $(s).hidden = s !== id;
}

function signInScreen(auth, message = '') {
  screen('signin');
  $('signin-dev').hidden = !auth.config.dev_login;
  $('signin-token').hidden = auth.config.dev_login;
  $('signin-error').textContent = message;
  (auth.config.dev_login ? $('signin-name') : $('signin-jwt')).focus();
  return new Promise((resolve) => {
    const form = $('signin-form');
    form.onsubmit = async (e) => {
      e.preventDefault();
      $('signin-error').textContent = '';
      try {
        if (auth.config.dev_login) {
          const name = $('signin-name').value.trim();
          if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new Error('Use 1 to 64 letters, digits, ".", "_" or "-".');
          await auth.devLogin(name);
        } else {
          const token = $('signin-jwt').value.trim();
          const problem = tokenProblem(token);
          if (problem) throw new Error(problem);
          auth.set(token, 'pasted');
        }
        form.onsubmit = null;
        resolve();
      } catch (err) {
        $('signin-error').textContent = err.message;
      }
    };
  });
}

function roomFromHash() {
  const m = /^#\/room\/(.+)$/.exec(location.hash);
  if (!m) return '';
  const name = decodeURIComponent(m[1]);
  return ROOM_RE.test(name) ? name : '';
}

async function main() {
  const config = await loadConfig();
  const auth = new Auth(config);
  if (!(await auth.start())) await signInScreen(auth);

  const socket = new Socket(async () => {
    // A token about to expire is renewed before it is used to connect.
    if (auth.expiresInMs() < 15000) await auth.refresh();
    return auth.token;
  });
  const api = new API(auth);
  const chat = new Chat(auth, socket, api);
  const view = new View(chat, socket);

  screen('app');
  $('me-name').textContent = auth.name;
  $('me-avatar').replaceWith(Object.assign(avatar(auth.user), { id: 'me-avatar' }));
  $('signout').addEventListener('click', () => {
    socket.stop();
    auth.signOut();
    location.hash = '';
    location.reload();
  });
  auth.addEventListener('expired', async () => {
    socket.stop();
    toast('Your session has expired: sign in again.', { kind: 'error' });
    auth.signOut();
    location.reload();
  });
  socket.addEventListener('close', (e) => {
    // 4001: the token expired on an open connection; 4008: too slow.
    if (e.detail.code === 4001) auth.refresh();
  });

  const route = () => {
    const name = roomFromHash();
    if (name) {
      chat.open(name);
      view.show(name);
    } else if (chat.rooms.size && location.hash !== '#/') {
      location.replace('#/room/' + encodeURIComponent([...chat.rooms.keys()].sort()[0]));
    } else {
      chat.current = '';
      view.show('');
    }
  };
  window.addEventListener('hashchange', route);
  route();
  view.renderConn();
  socket.connect();
  window.rtstack = { chat, socket, auth }; // for the browser tests and the curious
}

main().catch((err) => {
  console.error(err);
  toast('Something went wrong starting the chat: ' + err.message, { kind: 'error', ms: 60000 });
});
