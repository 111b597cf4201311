package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rtstack/rtstack/gateway/auth"
)

func TestRoomsAllow(t *testing.T) {
	tests := []struct {
		patterns []string
		room     string
		want     bool
	}{
		{nil, "anything", true},
		{[]string{}, "lobby", false},
		{[]string{"lobby"}, "lobby", true},
		{[]string{"lobby"}, "lobby2", false},
		{[]string{"lobby"}, "xlobby", false},
		{[]string{"team-a.*"}, "team-a.dev", true},
		{[]string{"team-a.*"}, "team-a.", true},
		{[]string{"team-a.*"}, "team-a", false},
		{[]string{"team-a.*"}, "team-ab.dev", false},
		{[]string{"*"}, "x", true},
		{[]string{"*-ops"}, "eu-ops", true},
		{[]string{"*-ops"}, "eu-ops-2", false},
		{[]string{"a*b*c"}, "abc", true},
		{[]string{"a*b*c"}, "aXbYc", true},
		{[]string{"a*b*c"}, "acb", false},
		{[]string{"a*bc*bc"}, "abcbc", true},
		{[]string{"ab*ba"}, "aba", false}, // prefix and suffix may not overlap
		// '.' is a plain character, never "any": no regexp semantics.
		{[]string{"team.a"}, "teamXa", false},
		{[]string{"lobby", "team-*"}, "team-b", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.patterns, ",")+"~"+tt.room, func(t *testing.T) {
			if got := auth.RoomsAllow(tt.patterns, tt.room); got != tt.want {
				t.Fatalf("RoomsAllow(%q, %q) = %v, want %v", tt.patterns, tt.room, got, tt.want)
			}
		})
	}
}

func TestRoomsClaim(t *testing.T) {
	keys, _ := auth.NewKeys("secret")
	sign := func(rooms []string) string {
		t.Helper()
		tok, err := keys.SignClaims(auth.Claims{Rooms: rooms, RegisteredClaims: jwt.RegisteredClaims{Subject: "alice"}}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	c, err := keys.Verify(sign([]string{"lobby", "team-a.*"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.AllowsRoom("team-a.x") || c.AllowsRoom("other") {
		t.Fatalf("claims %+v: wrong rooms", c)
	}
	if err := c.CheckRoom("other"); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("CheckRoom(other) = %v, want ErrForbidden", err)
	}
	// An empty claim survives the round trip as "no room", not "every room".
	c, err = keys.Verify(sign([]string{}))
	if err != nil || c.Rooms == nil || c.AllowsRoom("lobby") {
		t.Fatalf("empty rooms claim read as %+v, %v", c, err)
	}
	c, err = keys.Verify(sign(nil))
	if err != nil || !c.AllowsRoom("lobby") {
		t.Fatalf("token without the claim read as %+v, %v", c, err)
	}
	for _, bad := range [][]string{{""}, {"a b"}, {"team/*"}, {strings.Repeat("a", 65)}, {"lobby", "(.*)"}} {
		if _, err := keys.Verify(sign(bad)); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("rooms claim %q accepted (%v)", bad, err)
		}
	}
}

func TestAudienceAndIssuer(t *testing.T) {
	plain, _ := auth.NewKeys("secret")
	strict, _ := auth.NewKeys("secret", auth.WithAudience("chat"), auth.WithIssuer("https://id.example"))
	otherAud, _ := auth.NewKeys("secret", auth.WithAudience("billing"), auth.WithIssuer("https://id.example"))
	otherIss, _ := auth.NewKeys("secret", auth.WithAudience("chat"), auth.WithIssuer("https://evil.example"))
	tok := func(k *auth.Keys) string {
		s, err := k.Sign("alice", "", false, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := strict.Verify(tok(strict)); err != nil {
		t.Fatalf("own token refused: %v", err)
	}
	for name, s := range map[string]string{"no aud or iss": tok(plain), "other audience": tok(otherAud), "other issuer": tok(otherIss)} {
		if _, err := strict.Verify(s); !errors.Is(err, auth.ErrUnauthorized) {
			t.Errorf("%s: Verify = %v, want ErrUnauthorized", name, err)
		}
	}
	// Keys without the settings check neither.
	if _, err := plain.Verify(tok(strict)); err != nil {
		t.Errorf("unchecked keys refused a token with aud and iss: %v", err)
	}
}
