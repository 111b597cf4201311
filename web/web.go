package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// FS is the UI's files (index.html, js/, style.css, favicons) at its root.
var FS fs.FS = mustSub(static, "static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil { // cannot happen: dir is embedded above
		return f
	}
	return sub
}

// Options are what the page learns about the server it runs on, from
// GET /config.json.
type Options struct {
	// DevLogin makes the page offer sign-in by name through
	// POST /api/dev/login (rtstack dev only).
	DevLogin bool
	// EmbedOrigins are the origins of apps that may show the page in a
	// frame and hand it tokens with postMessage ("*": any). Empty: the page
	// cannot be framed.
	EmbedOrigins []string
}

type pageConfig struct {
	DevLogin     bool     `json:"dev_login"`
	EmbedOrigins []string `json:"embed_origins"`
}

// Handler serves the UI. Mount it at "/" (after the more specific /ws,
// /api/, /healthz, … routes); unknown paths answer 404. Responses are
// revalidated on every load (no-cache) so a new binary's UI shows at once.
func Handler(o Options) http.Handler {
	files := http.FileServerFS(FS)
	origins := o.EmbedOrigins
	if origins == nil {
		origins = []string{}
	}
	cfg, _ := json.Marshal(pageConfig{DevLogin: o.DevLogin, EmbedOrigins: origins}) // plain data: cannot fail
	csp := "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors " + frameAncestors(o.EmbedOrigins)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		if r.URL.Path == "/config.json" {
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(cfg)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// frameAncestors is the CSP source list of the apps allowed to frame the
// page.
func frameAncestors(origins []string) string {
	if len(origins) == 0 {
		return "'none'"
	}
	var b strings.Builder
	b.WriteString("'self'")
	for _, o := range origins {
		// A CSP source cannot contain these; an origin never does.
		if o == "" || strings.ContainsAny(o, " ;,'") {
			continue
		}
		b.WriteString(" " + strings.TrimSuffix(o, "/"))
	}
	return b.String()
}
