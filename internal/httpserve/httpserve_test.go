package httpserve_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/httpserve"
)

// Every handler's body is bounded, and the zero Config means the defaults.
func TestBoundsEveryBody(t *testing.T) {
	srv, err := httpserve.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), httpserve.Config{MaxBodyBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	if srv.ReadTimeout != httpserve.DefaultReadTimeout || srv.WriteTimeout != httpserve.DefaultWriteTimeout ||
		srv.IdleTimeout != httpserve.DefaultIdleTimeout || srv.ReadHeaderTimeout != httpserve.DefaultReadHeaderTimeout {
		t.Fatalf("timeouts %v %v %v %v, want the defaults", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = srv
	hs.Start()
	defer hs.Close()
	for body, want := range map[string]int{"small": http.StatusNoContent, strings.Repeat("x", 11): http.StatusRequestEntityTooLarge} {
		resp, err := http.Post(hs.URL, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("body of %d bytes: HTTP %d, want %d", len(body), resp.StatusCode, want)
		}
	}
	if _, err := httpserve.New(http.NotFoundHandler(), httpserve.Config{ReadTimeout: -time.Second}); err == nil {
		t.Error("a negative timeout was accepted")
	}
}
