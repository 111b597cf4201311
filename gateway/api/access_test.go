package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/gateway/clienterr"
)

// TestRoomsClaim: a token with a rooms claim reads history, counters and a
// room's leaderboard of matching rooms only (403 forbidden otherwise); a
// token without it reads every room.
func TestRoomsClaim(t *testing.T) {
	f := setup(t)
	limited, err := f.keys.SignClaims(auth.Claims{Rooms: []string{"lobby", "team-a.*"}, RegisteredClaims: jwt.RegisteredClaims{Subject: "alice"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range []string{"lobby", "team-a.dev"} {
		f.do(t, "GET", "/api/rooms/"+room+"/messages", limited, "").want(t, http.StatusOK)
		f.do(t, "GET", "/api/rooms/"+room+"/counters", limited, "").want(t, http.StatusOK)
		f.do(t, "GET", "/api/leaderboard?room="+room, limited, "").want(t, http.StatusOK)
	}
	before := len(f.hist.args)
	for _, path := range []string{
		"/api/rooms/secret/messages", "/api/rooms/team-b.dev/messages", "/api/rooms/lobby2/counters",
		"/api/rooms/team-a/counters", "/api/leaderboard?room=secret",
	} {
		r := f.do(t, "GET", path, limited, "").want(t, http.StatusForbidden)
		if r.code() != clienterr.Forbidden || !strings.Contains(r.message(), "does not allow room") {
			t.Errorf("%s: answered %s, want code forbidden naming the room", path, r.raw)
		}
	}
	if len(f.hist.args) != before {
		t.Fatalf("a forbidden history request reached the read model: %v", f.hist.args[before:])
	}
	// The global leaderboard is no room's.
	f.do(t, "GET", "/api/leaderboard", limited, "").want(t, http.StatusOK)
	// Without the claim every room is open.
	f.do(t, "GET", "/api/rooms/secret/messages", f.user, "").want(t, http.StatusOK)
}
