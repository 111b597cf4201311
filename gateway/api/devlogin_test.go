package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rtstack/rtstack/gateway/api"
)

func TestDevLogin(t *testing.T) {
	f := setup(t, func(c *api.Config) { c.DevLogin = true; c.DevTokenTTL = 10 * time.Minute })
	res := f.do(t, "POST", "/api/dev/login", "", `{"name":"bob.b"}`).want(t, http.StatusOK)
	tok, _ := res.body["token"].(string)
	claims, err := f.keys.Verify(tok)
	if err != nil {
		t.Fatalf("dev token does not verify: %v", err)
	}
	if claims.User() != "bob.b" || claims.Admin {
		t.Fatalf("claims %+v, want user bob.b without admin", claims)
	}
	if left := time.Until(claims.ExpiresAt.Time); left > 10*time.Minute || left < 9*time.Minute {
		t.Fatalf("token valid for %v, want the 10m DevTokenTTL", left)
	}
	if exp, _ := res.body["expires_at"].(float64); int64(exp) != claims.ExpiresAt.UnixMilli() {
		t.Fatalf("expires_at %v, token exp %v", exp, claims.ExpiresAt.UnixMilli())
	}
	// The token works on the rest of the API.
	f.do(t, "GET", "/api/rooms/lobby/messages", tok, "").want(t, http.StatusOK)

	for _, body := range []string{`{"name":""}`, `{"name":"has space"}`, `{"name":"a@b"}`, `{"user":"x"}`, `not json`} {
		f.do(t, "POST", "/api/dev/login", "", body).want(t, http.StatusBadRequest)
	}
	f.do(t, "GET", "/api/dev/login", "", "").want(t, http.StatusNotFound)
}

func TestDevLoginOffByDefault(t *testing.T) {
	f := setup(t)
	f.do(t, "POST", "/api/dev/login", "", `{"name":"mallory"}`).want(t, http.StatusNotFound)
}
