//go:build uidemo

package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var shotPath = flag.String("browser.shot", "", "where TestBrowser saves a screenshot (PNG); empty: none")

type cdp struct {
	ws *websocket.Conn
	id atomic.Int64
}

func (c *cdp) call(t *testing.T, method string, params map[string]any) map[string]any {
	t.Helper()
	id := c.id.Add(1)
	if err := c.ws.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		t.Fatal(err)
	}
	for {
		var m map[string]any
		if err := c.ws.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if v, ok := m["id"].(float64); ok && int64(v) == id {
			if e, ok := m["error"]; ok {
				t.Fatalf("%s: %v", method, e)
			}
			r, _ := m["result"].(map[string]any)
			return r
		}
	}
}

func (c *cdp) eval(t *testing.T, js string) any {
	t.Helper()
	r := c.call(t, "Runtime.evaluate", map[string]any{"expression": js, "returnByValue": true, "awaitPromise": true})
	if ex, ok := r["exceptionDetails"]; ok {
		t.Fatalf("eval %q: %v", js, ex)
	}
	res, _ := r["result"].(map[string]any)
	return res["value"]
}

func (c *cdp) waitFor(t *testing.T, js string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if v, _ := c.eval(t, js).(bool); v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", js)
		}
	}
}

func (c *cdp) shot(t *testing.T, path string) {
	t.Helper()
	r := c.call(t, "Page.captureScreenshot", map[string]any{"format": "png"})
	b, _ := base64.StdEncoding.DecodeString(r["data"].(string))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("TestBrowser needs chromium on PATH (apt-get install chromium)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uiURL := startDemo(t, ctx, ln)
	port, err := net.Listen("tcp", "127.0.0.1:0") // a free port for DevTools
	if err != nil {
		t.Fatal(err)
	}
	devtools := port.Addr().String()
	_ = port.Close()
	_, devPort, _ := net.SplitHostPort(devtools)
	cmd := exec.CommandContext(ctx, chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1200,900", "--remote-debugging-port="+devPort, "--user-data-dir="+t.TempDir(), "about:blank")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	var wsURL string
	for deadline := time.Now().Add(20 * time.Second); wsURL == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no devtools")
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+devtools+"/json/list", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var pages []map[string]any
		_ = json.NewDecoder(res.Body).Decode(&pages)
		res.Body.Close()
		for _, p := range pages {
			if p["type"] == "page" {
				wsURL, _ = p["webSocketDebuggerUrl"].(string)
			}
		}
	}
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &cdp{ws: ws}
	c.call(t, "Page.enable", nil)
	c.call(t, "Page.navigate", map[string]any{"url": uiURL})
	c.waitFor(t, `document.getElementById('status')?.textContent === 'connected' && document.querySelectorAll('#messages .msg').length > 3`)

	// Send as bob: pending, then acknowledged and shown with its position.
	c.eval(t, `document.getElementById('text').value = 'hi from bob'; document.getElementById('composer').requestSubmit(); true`)
	c.waitFor(t, `[...document.querySelectorAll('#messages .msg:not(.pending)')].some(m => m.textContent.includes('hi from bob') && /\d+:\d+/.test(m.querySelector('.pos').textContent))`)
	if n := c.eval(t, `[...document.querySelectorAll('#messages .msg')].filter(m => m.textContent.includes('hi from bob')).length`); n != float64(1) {
		t.Fatalf("bob's message shown %v times", n)
	}
	// Edit it, then react to it.
	c.eval(t, `state.editing = [...state.rooms.get('lobby').byId.values()].find(m => m.text === 'hi from bob').id; document.getElementById('text').value = 'hi from bob (edited)'; document.getElementById('composer').requestSubmit(); true`)
	c.waitFor(t, `document.getElementById('messages').textContent.includes('hi from bob (edited)')`)

	// Drop the connection: the UI reconnects with since and misses nothing.
	before := c.eval(t, `state.rooms.get('lobby').last.offset`).(float64)
	c.eval(t, `state.ws.close(); true`)
	c.waitFor(t, `document.getElementById('status').textContent.startsWith('reconnecting')`)
	c.waitFor(t, fmt.Sprintf(`document.getElementById('status').textContent === 'connected' && state.rooms.get('lobby').last.offset > %v + 2`, before))
	live := c.eval(t, `[...document.querySelectorAll('#messages .msg .text')].map(e => e.textContent).filter(t => t.startsWith('live message')).join('|')`).(string)
	parts := strings.Split(live, "|")
	seen := map[string]bool{}
	for i, p := range parts {
		if seen[p] {
			t.Fatalf("duplicate %q in %v", p, parts)
		}
		seen[p] = true
		if i > 0 {
			var a, b int
			fmt.Sscanf(parts[i-1], "live message %d", &a)
			fmt.Sscanf(p, "live message %d", &b)
			if b != a+1 {
				t.Fatalf("gap between %q and %q", parts[i-1], p)
			}
		}
	}
	if len(parts) < 3 {
		t.Fatalf("only %v live messages", parts)
	}
	t.Logf("live messages after reconnect: %v", parts)
	if *shotPath != "" {
		c.shot(t, *shotPath)
	}
}
