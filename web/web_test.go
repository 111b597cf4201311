package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rtstack/rtstack/web"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	tests := []struct {
		method, path string
		status       int
		ctype        string
		contains     []string
	}{
		{"GET", "/", 200, "text/html", []string{"rtstack token --user NAME", `src="app.js"`}},
		{"GET", "/app.js", 200, "javascript", []string{"/ws?token=", ".split('\\n')", "since", "X-Rtstack-Position", "client_id"}},
		{"GET", "/style.css", 200, "text/css", nil},
		{"HEAD", "/", 200, "text/html", nil},
		{"GET", "/missing.js", 404, "", nil},
		{"POST", "/", 405, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(context.Background(), tt.method, srv.URL+tt.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if !strings.Contains(res.Header.Get("Content-Type"), tt.ctype) {
				t.Fatalf("Content-Type %q, want %q", res.Header.Get("Content-Type"), tt.ctype)
			}
			for _, s := range tt.contains {
				if !strings.Contains(string(body), s) {
					t.Fatalf("body lacks %q", s)
				}
			}
			if tt.status == 200 && res.Header.Get("Content-Security-Policy") == "" {
				t.Fatal("no Content-Security-Policy")
			}
		})
	}
}
