package auth_test

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rtstack/rtstack/gateway/auth"
)

func TestVerify(t *testing.T) {
	keys, err := auth.NewKeys("secret")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewKeys("other")
	good, _ := keys.Sign("alice", "Alice", true, time.Minute)
	expired, _ := keys.Sign("alice", "", false, -time.Minute)
	foreign, _ := other.Sign("alice", "", false, time.Minute)
	noSub, _ := keys.Sign("", "", false, time.Minute)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString([]byte("secret"))

	tests := []struct {
		name, token string
		ok          bool
	}{
		{"good", good, true},
		{"missing", "", false},
		{"garbage", "not.a.jwt", false},
		{"expired", expired, false},
		{"other secret", foreign, false},
		{"no subject", noSub, false},
		{"alg none", none, false},
		{"no exp", noExp, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := keys.Verify(tt.token)
			if tt.ok {
				if err != nil || c.User() != "alice" || c.Name != "Alice" || !c.Admin {
					t.Fatalf("Verify = %+v, %v; want alice", c, err)
				}
				return
			}
			if !errors.Is(err, auth.ErrUnauthorized) {
				t.Fatalf("Verify = %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/ws?token=q", nil)
	if got := auth.FromRequest(r); got != "q" {
		t.Fatalf("query token: got %q", got)
	}
	r.Header.Set("Authorization", "Bearer h")
	if got := auth.FromRequest(r); got != "h" {
		t.Fatalf("header wins: got %q", got)
	}
}

func FuzzVerify(f *testing.F) {
	keys, _ := auth.NewKeys("secret")
	good, _ := keys.Sign("alice", "", false, time.Hour)
	f.Add(good)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := keys.Verify(tok)
		if err == nil && c.User() == "" {
			t.Fatal("accepted a token without a user")
		}
		if err != nil && !errors.Is(err, auth.ErrUnauthorized) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
