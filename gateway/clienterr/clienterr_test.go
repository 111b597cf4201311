package clienterr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/gateway/clienterr"
)

// TestEveryCodeDocumented: a client reads the codes in the docs, so a code
// in the table that no doc table lists is a code nobody can handle.
func TestEveryCodeDocumented(t *testing.T) {
	var docs strings.Builder
	for _, f := range []string{"../../docs/protocol.md", "../../docs/http.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	for _, c := range clienterr.Table {
		if !strings.Contains(docs.String(), "| `"+c.Code+"`") && !strings.Contains(docs.String(), ", `"+c.Code+"` |") {
			t.Errorf("code %s is in no table of docs/protocol.md or docs/http.md", c.Code)
		}
	}
}

func TestTableIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range clienterr.Table {
		if seen[c.Code] {
			t.Errorf("code %s twice in the table", c.Code)
		}
		seen[c.Code] = true
		if c.Status < 400 || c.Status > 599 {
			t.Errorf("code %s answers status %d", c.Code, c.Status)
		}
		if c.Temporary && c.Status != http.StatusServiceUnavailable && c.Status != http.StatusTooManyRequests &&
			c.Status != http.StatusConflict && c.Status != http.StatusNotFound {
			t.Errorf("temporary code %s answers %d, a status that does not invite a retry", c.Code, c.Status)
		}
	}
}

func TestOf(t *testing.T) {
	for _, tt := range []struct {
		err       error
		code      string
		status    int
		temporary bool
		expected  bool
	}{
		{fmt.Errorf("send: %w", commands.ErrTextTooLong), clienterr.TextTooLong, 400, false, true},
		{fmt.Errorf("x: %w", commands.ErrBadURL), clienterr.Invalid, 400, false, true},
		{fmt.Errorf("append: %w", commands.ErrAppend), clienterr.Unavailable, 503, true, true},
		{context.DeadlineExceeded, clienterr.Unavailable, 503, true, true},
		{fmt.Errorf("%w: expired", auth.ErrUnauthorized), clienterr.Unauthorized, 401, false, true},
		{clienterr.ErrRebuildRunning, clienterr.RebuildRunning, 409, true, true},
		{errors.New("disk on fire"), clienterr.Internal, 500, false, false},
	} {
		t.Run(tt.err.Error(), func(t *testing.T) {
			c, ok := clienterr.Of(tt.err)
			if c.Code != tt.code || c.Status != tt.status || c.Temporary != tt.temporary || ok != tt.expected {
				t.Fatalf("Of = %+v, %v; want %s %d temporary=%v, %v", c, ok, tt.code, tt.status, tt.temporary, tt.expected)
			}
		})
	}
	if c := clienterr.Lookup("no_such_code"); c.Code != clienterr.Internal {
		t.Fatalf("unknown code looked up as %+v", c)
	}
	if m := clienterr.Message(clienterr.Lookup(clienterr.Internal), errors.New("secret detail")); strings.Contains(m, "secret") {
		t.Fatalf("internal message leaks: %q", m)
	}
}

func TestWriteHTTP(t *testing.T) {
	rec := httptest.NewRecorder()
	clienterr.WriteHTTP(rec, clienterr.NotReached, "not yet", map[string]any{"position": "0:1"})
	want := `{"error":{"code":"not_reached","message":"not yet","temporary":true},"position":"0:1"}` + "\n"
	if rec.Code != http.StatusConflict || rec.Body.String() != want || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answered %d %q (%s), want 409 %q", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"), want)
	}
}
