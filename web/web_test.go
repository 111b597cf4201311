package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rtstack/rtstack/web"
)

type page struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, srv *httptest.Server, method, path string) page {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, srv.URL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return page{res.StatusCode, res.Header, string(body)}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(web.Handler(web.Options{}))
	defer srv.Close()
	tests := []struct {
		method, path string
		status       int
		ctype        string
		contains     []string
	}{
		{"GET", "/", 200, "text/html", []string{`type="module" src="js/main.js"`, `name="viewport"`, `rel="icon"`}},
		{"GET", "/js/main.js", 200, "javascript", []string{"#\\/room\\/"}},
		{"GET", "/js/socket.js", 200, "javascript", []string{"/ws?token=", ".split('\\n')"}},
		{"GET", "/js/chat.js", 200, "javascript", []string{"since", "client_id", "'typing'", "resync"}},
		{"GET", "/js/api.js", 200, "javascript", []string{"X-Rtstack-Position", "before"}},
		{"GET", "/style.css", 200, "text/css", []string{"prefers-color-scheme: dark", "max-width: 759px"}},
		{"GET", "/favicon.ico", 200, "image/", nil},
		{"GET", "/favicon.svg", 200, "image/svg+xml", nil},
		{"GET", "/config.json", 200, "application/json", []string{`"dev_login":false`}},
		{"HEAD", "/", 200, "text/html", nil},
		{"GET", "/missing.js", 404, "", nil},
		{"POST", "/", 405, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			p := get(t, srv, tt.method, tt.path)
			if p.status != tt.status {
				t.Fatalf("status %d, want %d", p.status, tt.status)
			}
			if !strings.Contains(p.header.Get("Content-Type"), tt.ctype) {
				t.Fatalf("Content-Type %q, want %q", p.header.Get("Content-Type"), tt.ctype)
			}
			for _, s := range tt.contains {
				if !strings.Contains(p.body, s) {
					t.Fatalf("body lacks %q", s)
				}
			}
			if tt.status == 200 && !strings.Contains(p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Fatalf("CSP %q does not forbid framing", p.header.Get("Content-Security-Policy"))
			}
		})
	}
}

// The options reach the page: dev login on, and the embedding origins both
// in the config it reads and in the CSP that lets them frame it.
func TestHandlerOptions(t *testing.T) {
	srv := httptest.NewServer(web.Handler(web.Options{DevLogin: true, EmbedOrigins: []string{"https://app.example.com/", "bad origin;"}}))
	defer srv.Close()
	p := get(t, srv, "GET", "/config.json")
	var cfg struct {
		DevLogin     bool     `json:"dev_login"`
		EmbedOrigins []string `json:"embed_origins"`
	}
	if err := json.Unmarshal([]byte(p.body), &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.DevLogin || len(cfg.EmbedOrigins) != 2 {
		t.Fatalf("config %+v", cfg)
	}
	csp := p.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self' https://app.example.com;") && !strings.HasSuffix(csp, "frame-ancestors 'self' https://app.example.com") {
		t.Fatalf("CSP %q: want frame-ancestors 'self' https://app.example.com and nothing unsafe", csp)
	}
}
