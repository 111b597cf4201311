//go:build e2e

// The web client in a real browser (headless Chromium, driven over the
// DevTools protocol) against a real `rtstack dev`: `make test-e2e`.
package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// binPath is the rtstack binary, built once.
var binPath string

func TestMain(m *testing.M) {
	testsvc.RunWithBinary(m, "../cmd/rtstack", &binPath)
}

const waitFor = 30 * time.Second

const devTokenTTL = 40 * time.Second

// startDev runs `rtstack dev` with its own ports, data, database, Redis
// prefix and RabbitMQ queues, and returns its base URL once it is ready.
func startDev(t *testing.T) string {
	t.Helper()
	pgURL := testsvc.Postgres(t)
	_, redisPfx := testsvc.Redis(t)
	testsvc.Rabbit(t)
	httpAddr := testsvc.FreeAddr(t)
	rabbitPfx := fmt.Sprintf("webe2e%d.", time.Now().UnixNano())
	t.Cleanup(func() { testsvc.DeleteQueues(rabbitPfx) })
	cmd := exec.Command(binPath, "dev")
	cmd.Env = append(os.Environ(),
		"DATA_DIR="+t.TempDir(), "BROKER_ADDR="+testsvc.FreeAddr(t), "HTTP_ADDR="+httpAddr,
		"POSTGRES_URL="+pgURL, "REDIS_PREFIX="+redisPfx, "RABBIT_PREFIX="+rabbitPfx, "PARTITIONS=3",
		// Short-lived sign-ins, so the test sees the page renew them on an
		// open connection (the server warns 30 s before exp).
		"DEV_TOKEN_TTL="+devTokenTTL.String())
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("rtstack dev output:\n%s", logs)
		}
	})
	base := "http://" + httpAddr
	testsvc.Eventually(t, 90*time.Second, "rtstack dev ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// artifacts is where screenshots go (git-ignored): RTSTACK_E2E_ARTIFACTS,
// default ../artifacts/e2e.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RTSTACK_E2E_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts", "e2e")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if lp, err := exec.LookPath(p); err == nil {
				path = lp
				break
			}
		}
	}
	if path == "" {
		t.Fatal("no Chromium: apt-get install -y chromium (or set CHROMIUM)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("lang", "en-US"), chromedp.WindowSize(1280, 800))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// person is one user's tab, in a browser context of its own (its own
// storage), with what its console said.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu      sync.Mutex
	console []string // errors and exceptions
}

func newPerson(t *testing.T, b context.Context, name string, width, height int64, mobile bool) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &person{t: t, name: name, ctx: ctx}
	vp := []chromedp.EmulateViewportOption{}
	if mobile {
		vp = append(vp, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height, vp...)); err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				p.mu.Lock()
				p.console = append(p.console, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line+1))
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *person) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// js evaluates expr in the page and decodes its value into out (if any).
func (p *person) js(expr string, out any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("%s: %s = %s: %v", p.name, expr, raw, err)
		}
	}
}

// until waits for the JavaScript condition expr to be true. On a timeout it
// also reports what the page showed, and saves a screenshot beside the others.
func (p *person) until(what, expr string) {
	p.t.Helper()
	p.untilWithin(waitFor, what, expr)
}

func (p *person) untilWithin(d time.Duration, what, expr string) {
	p.t.Helper()
	var state string
	polls := 0
	defer func() {
		if p.t.Failed() && state != "" {
			p.shot(artifacts(p.t), "failed-"+p.name+".png")
			p.t.Logf("%s: the page while waiting for %s: %s", p.name, what, state)
		}
	}()
	testsvc.Eventually(p.t, d, p.name+": "+what, func() bool {
		var ok bool
		p.js("!!("+expr+")", &ok)
		if !ok && polls%25 == 0 {
			p.js(`JSON.stringify({hash: location.hash, conn: document.getElementById('conn')?.dataset.state,
				rooms: window.rtstack ? [...window.rtstack.chat.rooms.values()].map(r => ({name: r.name, joined: r.joined, loaded: r.loaded, joinRef: r.joinRef})) : null,
				text: document.body.innerText.slice(-400)})`, &state)
		}
		polls++
		return ok
	})
}

func (p *person) typeText(sel, text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// texts is the text of every message shown (pending ones excluded), in order.
func (p *person) texts() []string {
	var out []string
	p.js(`[...document.querySelectorAll('#messages li.msg:not(.pending) .text')].map(e => e.firstChild ? e.textContent.replace(/ \(edited\)$/, '') : '')`, &out)
	return out
}

func (p *person) shot(dir, name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *person) noConsoleErrors() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.console) > 0 {
		p.t.Errorf("%s: the browser console has errors:\n%s", p.name, strings.Join(p.console, "\n"))
	}
}

// noPositions fails if anything like a log position ("0:4") is on screen.
func (p *person) noPositions() {
	p.t.Helper()
	var found []string
	p.js(`document.body.innerText.match(/(^|[^\d:])[0-9]:\d+(?![\d:])/g) || []`, &found)
	if len(found) > 0 {
		p.t.Errorf("%s: log positions shown to people: %q", p.name, found)
	}
}

// setOffline cuts (or restores) the tab's network as DevTools does: every
// request fails and navigator.onLine follows.
func (p *person) setOffline(off bool) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}},
		}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: off, DownloadThroughput: -1, UploadThroughput: -1,
		})
		return err
	}))
}

// mouseAway moves the pointer off the page's controls, so no hover state
// shows in a screenshot.
func (p *person) mouseAway() {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.DispatchMouseEvent, input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseMoved, X: 1, Y: 1})
		return err
	}))
}

func (p *person) darkMode(dark bool) {
	p.t.Helper()
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// devLogin signs in on the page by typing a name; shot, if not empty, is
// where a screenshot of the filled-in form goes.
func (p *person) devLogin(base, room, shot string) {
	p.t.Helper()
	p.do(chromedp.Navigate(base + "/#/room/" + room))
	p.do(chromedp.WaitVisible(chromedp.ID("signin-name")))
	p.typeText("#signin-name", p.name)
	if shot != "" {
		p.shot(filepath.Dir(shot), filepath.Base(shot))
	}
	p.do(chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
	p.waitJoined(room)
}

func (p *person) waitJoined(room string) {
	p.t.Helper()
	p.until("live", `document.getElementById('conn').dataset.state === 'live'`)
	p.until("joined "+room, fmt.Sprintf(`window.rtstack && window.rtstack.chat.rooms.get(%q)?.joined && window.rtstack.chat.rooms.get(%q)?.loaded`, room, room))
}

func (p *person) send(text string) {
	p.t.Helper()
	p.typeText("#text", text)
	p.enter()
}

// enter presses Enter in the focused element as a keyboard does (keydown
// and keyup, no extra character event that SendKeys's "\r" would add).
func (p *person) enter() {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
			}); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (p *person) sees(text string) {
	p.t.Helper()
	p.until("sees "+text, fmt.Sprintf(`[...document.querySelectorAll('#messages li.msg:not(.pending) .text')].some(e => e.textContent.startsWith(%q))`, text))
}

// msgSel is a CSS selector for the message whose text starts with text.
func msgJS(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#messages li.msg:not(.pending)')].find(li => li.querySelector('.text')?.textContent.startsWith(%q))`, text)
}

func score(p *person, user string) int {
	var n int
	p.js(fmt.Sprintf(`+(document.querySelector('#leaderboard li[data-user=%q] .score')?.textContent || 0)`, user), &n)
	return n
}

func TestBrowser(t *testing.T) {
	testsvc.Integration(t)
	base := startDev(t)
	out := artifacts(t)
	b := browser(t)

	if resp, err := http.Get(base + "/favicon.ico"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /favicon.ico: %v %v", err, resp)
	}

	alice := newPerson(t, b, "alice", 1280, 800, false)
	bob := newPerson(t, b, "bob", 1280, 800, false)
	alice.devLogin(base, "lobby", filepath.Join(out, "signin.png"))
	bob.devLogin(base, "lobby", "")
	// Watch alice's connection for the whole test: it must never drop, though
	// her first token expires long before the end.
	var firstExp int64
	alice.js(`window.rtstack.auth.claims.exp * 1000`, &firstExp)
	alice.js(`window.watch = {first: window.rtstack.auth.token, closes: 0, refreshed: 0};
		window.rtstack.socket.addEventListener('close', () => window.watch.closes++);
		window.rtstack.socket.addEventListener('frame', (e) => { if (e.detail.type === 'token_refreshed') window.watch.refreshed++; })`, nil)

	// Chat: each sees the other's messages, and a mention stands out.
	alice.send("hello bob")
	bob.sees("hello bob")
	alice.js(`window.notes = []; window.rtstack.chat.addEventListener('notification', (e) => window.notes.push(e.detail))`, nil)
	bob.send("hi @alice, welcome")
	alice.sees("hi @alice")
	alice.until("the mention highlighted", msgJS("hi @alice")+`.classList.contains('mentions-me') && !!document.querySelector('#messages .mention.me')`)
	alice.until("the mention notified", `window.notes.some(n => n.kind === 'mention' && n.from === 'bob' && n.room === 'lobby')`)

	// Presence: both online, on both pages.
	for _, p := range []*person{alice, bob} {
		p.until("both online", `['alice','bob'].every(u => document.querySelector('#online li[data-user="'+u+'"]'))`)
	}

	// Typing: shown to the other while it lasts, never stored as a message.
	bob.typeText("#text", "I am wri")
	alice.until("bob typing", `document.getElementById('typing').textContent === 'bob is typing…'`)
	bob.js(`document.getElementById('text').value = ''`, nil)

	// The leaderboard and the counters move as bob talks.
	alice.until("bob on the board", `document.querySelector('#leaderboard li[data-user="bob"]')`)
	before := score(alice, "bob")
	var total int
	alice.js(`+document.querySelector('#counters [data-stat=total]').textContent`, &total)
	bob.send("one more from bob")
	alice.sees("one more from bob")
	alice.until("bob's score up", fmt.Sprintf(`+document.querySelector('#leaderboard li[data-user="bob"] .score').textContent === %d`, before+1))
	alice.until("the room's total up", fmt.Sprintf(`+document.querySelector('#counters [data-stat=total]').textContent === %d`, total+1))
	alice.until("a bar in the chart", `document.querySelectorAll('#counters svg rect').length >= 1`)

	// Reactions through the picker, edit and delete of one's own message.
	bob.js(msgJS("hello bob")+`.querySelector('[data-act=react]').click()`, nil)
	bob.do(chromedp.WaitVisible(chromedp.ID("picker")))
	bob.do(chromedp.Click(chromedp.CSS(`#picker button[data-emoji="👍"]`)))
	alice.until("bob's 👍", msgJS("hello bob")+`?.querySelector('.chip[title="bob"] .n')?.textContent === '1'`)
	alice.js(msgJS("hello bob")+`.querySelector('[data-act=edit]').click()`, nil)
	alice.do(chromedp.WaitVisible(chromedp.CSS(".edit-box")))
	alice.js(`document.querySelector('.edit-box').value = 'hello bob, edited'`, nil)
	alice.do(chromedp.Focus(chromedp.CSS(".edit-box")))
	alice.enter()
	bob.until("the edit", msgJS("hello bob, edited")+`?.querySelector('.edited')`)
	alice.send("oops, wrong room")
	alice.sees("oops")
	bob.sees("oops")
	alice.js(msgJS("oops")+`.querySelector('[data-act=delete]').click()`, nil)
	alice.do(chromedp.Click(chromedp.CSS(`[data-act="delete-yes"]`)))
	bob.until("the deletion", `[...document.querySelectorAll('#messages li.msg.deleted')].some(li => li.textContent.includes('This message was deleted.'))`)

	// Unread counts: alice looks at another room while bob talks in lobby.
	alice.do(chromedp.Navigate(base + "/#/room/random"))
	alice.waitJoined("random")
	bob.send("are you there? @alice")
	alice.until("1 unread in lobby", `document.querySelector('#room-list a[data-room="lobby"] .badge[data-unread="1"]')`)
	alice.until("the mention marked on lobby", `document.querySelector('#room-list a[data-room="lobby"] .mention-badge')`)
	alice.until("a toast for the mention elsewhere", `[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('bob mentioned you in #lobby'))`)
	alice.do(chromedp.Click(chromedp.CSS(`#room-list a[data-room="lobby"]`)))
	alice.sees("are you there?")
	alice.until("lobby read", `!document.querySelector('#room-list a[data-room="lobby"] .badge')`)

	// Offline: bob's network goes; alice keeps talking and bob types; when
	// the network is back bob has exactly what he missed, and his message
	// went out once.
	bob.setOffline(true)
	bob.until("offline shown", `document.getElementById('conn').dataset.state === 'offline'`)
	var missed []string
	for i := 1; i <= 5; i++ {
		text := fmt.Sprintf("while you were away %d", i)
		missed = append(missed, text)
		alice.send(text)
	}
	alice.sees(missed[4])
	bob.send("typed while offline")
	bob.until("queued", `document.querySelector('#messages li.pending')?.textContent.includes('Waiting for the connection')`)
	bob.setOffline(false)
	bob.until("live again", `document.getElementById('conn').dataset.state === 'live'`)
	bob.sees(missed[4])
	alice.sees("typed while offline")
	bob.until("nothing pending", `!document.querySelector('#messages li.pending')`)
	a, bb := alice.texts(), bob.texts()
	if strings.Join(a, "\n") != strings.Join(bb, "\n") {
		t.Fatalf("after the outage bob's room differs from alice's:\nalice: %q\nbob:   %q", a, bb)
	}
	seen := map[string]int{}
	for _, s := range bb {
		seen[s]++
	}
	for _, s := range append(missed, "typed while offline") {
		if seen[s] != 1 {
			t.Fatalf("bob shows %q %d times, want once: %q", s, seen[s], bb)
		}
	}

	// History pages back as bob scrolls up: 60 messages in another room,
	// of which the first page shows the newest 50.
	alice.do(chromedp.Navigate(base + "/#/room/archive"))
	alice.waitJoined("archive")
	alice.js(`for (let i = 0; i < 60; i++) window.rtstack.chat.send('archive', 'archived ' + i)`, nil)
	alice.sees("archived 59")
	bob.do(chromedp.Navigate(base + "/#/room/archive"))
	bob.waitJoined("archive")
	bob.sees("archived 59")
	var shown int
	bob.js(`document.querySelectorAll('#messages li.msg').length`, &shown)
	if shown != 50 {
		t.Fatalf("bob's first page of archive has %d messages, want 50", shown)
	}
	bob.js(`document.getElementById('scroller').scrollTop = 0`, nil)
	bob.sees("archived 0")
	bob.until("the start of the room", `document.getElementById('history-state').textContent === 'This is the start of #archive.'`)
	bob.until("all 60, once each", `new Set([...document.querySelectorAll('#messages li.msg .text')].map(e => e.textContent)).size === 60 && document.querySelectorAll('#messages li.msg').length === 60`)
	alice.do(chromedp.Navigate(base + "/#/room/lobby"))
	alice.waitJoined("lobby")
	bob.do(chromedp.Navigate(base + "/#/room/lobby"))
	bob.waitJoined("lobby")

	// The token is renewed from the dev login before it expires (here: at
	// once), for the same user, and the page stays live.
	bob.until("a renewal scheduled", `window.rtstack.auth.timer > 0`)
	var renewed bool
	bob.js(`(async () => { const before = window.rtstack.auth.token; const t = await window.rtstack.auth.refresh(); return t !== '' && t !== before && window.rtstack.auth.user === 'bob'; })()`, &renewed)
	if !renewed {
		t.Fatal("bob's token was not renewed from the dev login")
	}

	// The phone: signed in by the embedding app's ?token=, no room yet;
	// the room list opens from the menu button, joins lobby and sends.
	keys, err := auth.NewKeys("dev")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := keys.Sign("carol", "Carol", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	carol := newPerson(t, b, "carol", 390, 844, true)
	carol.do(chromedp.Navigate(base + "/?token=" + tok))
	carol.until("live", `document.getElementById('conn').dataset.state === 'live'`)
	carol.until("token gone from the address", `!location.search.includes('token')`)
	carol.until("room list hidden", `getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'`)
	carol.do(chromedp.Click(chromedp.ID("open-sidebar")))
	carol.until("room list open", `getComputedStyle(document.getElementById('sidebar')).visibility === 'visible'`)
	carol.until("room list slid in", `document.getElementById('sidebar').getBoundingClientRect().left === 0`)
	carol.typeText("#join-room", "lobby")
	carol.do(chromedp.Click(chromedp.CSS(`#join-form button[type=submit]`)))
	carol.waitJoined("lobby")
	carol.until("room list closed", `!document.getElementById('sidebar').classList.contains('open')`)
	carol.sees("typed while offline")
	carol.send("hello from my phone @bob")
	alice.sees("hello from my phone")
	bob.sees("hello from my phone")
	carol.until("fits the screen", `document.documentElement.scrollWidth <= 390 && document.getElementById('composer').getBoundingClientRect().bottom <= 844`)
	alice.until("carol online", `document.querySelector('#online li[data-user="carol"]')`)

	// An app embeds the page in a frame and hands it a token with
	// postMessage: dora appears online in the room named in the frame's
	// address.
	doraToken, err := keys.Sign("dora", "Dora", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>an app</title><iframe id="chat" src="%[1]s/#/room/lobby" width="800" height="600"></iframe>
<script>
const chat = document.getElementById('chat');
window.asked = [];
addEventListener('message', (e) => {
  if (e.source !== chat.contentWindow) return;
  window.asked.push(e.data.type);
  if (e.data.type === 'rtstack:ready' || e.data.type === 'rtstack:token-needed') {
    chat.contentWindow.postMessage({type: 'rtstack:token', token: %[2]q}, %[1]q);
  }
});
</script>`, base, doraToken)
	}))
	t.Cleanup(app.Close)
	dora := newPerson(t, b, "dora", 1000, 700, false)
	dora.do(chromedp.Navigate(app.URL))
	dora.until("the page asked its embedder", `window.asked.includes('rtstack:ready')`)
	alice.until("dora online, signed in by her app", `document.querySelector('#online li[data-user="dora"]')`)

	for _, p := range []*person{alice, bob, carol} {
		p.noPositions()
	}
	// The boards caught up with everything: alice's 60 archive messages and
	// carol and dora in lobby. Then a calm screen for the pictures.
	alice.until("the board counts the archive", `+document.querySelector('#leaderboard li[data-user="alice"] .score')?.textContent >= 67`)
	alice.until("carol and dora counted as members", `+document.querySelector('#counters [data-stat=members]').textContent === 4`)
	for _, p := range []*person{alice, carol} {
		p.js(`document.getElementById('toasts').replaceChildren()`, nil)
		p.mouseAway()
	}
	alice.shot(out, "desktop.png")
	carol.shot(out, "phone.png")
	alice.darkMode(true)
	alice.shot(out, "desktop-dark.png")
	carol.darkMode(true)
	carol.shot(out, "phone-dark.png")
	carol.do(chromedp.Click(chromedp.ID("open-sidebar")))
	carol.until("room list slid in", `document.getElementById('sidebar').getBoundingClientRect().left === 0`)
	carol.shot(out, "phone-menu.png")
	t.Logf("screenshots in %s", out)
	// alice outlived her first token on one connection: the page renewed it
	// from the dev login and answered the server's token_expiring with it.
	alice.untilWithin(devTokenTTL+waitFor, "the first token expired", fmt.Sprintf(`Date.now() > %d`, firstExp+2000))
	var watch struct{ Closes, Refreshed int }
	alice.js(`({closes: window.watch.closes, refreshed: window.watch.refreshed})`, &watch)
	alice.until("a renewed token", `window.rtstack.auth.token !== window.watch.first && window.rtstack.auth.user === 'alice'`)
	if watch.Closes != 0 || watch.Refreshed == 0 {
		t.Fatalf("alice's connection across her token's expiry: %d closes, %d token_refreshed; want 0 and at least 1", watch.Closes, watch.Refreshed)
	}
	alice.send("still here after my first token expired")
	bob.sees("still here after my first token expired")

	for _, p := range []*person{alice, bob, carol, dora} {
		p.noConsoleErrors()
	}
}
