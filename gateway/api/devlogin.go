package api

import (
	"net/http"
	"regexp"

	"github.com/rtstack/rtstack/gateway/clienterr"
)

// devName is what a dev login accepts as a user id: the characters a
// mention (@name) can name, so every dev user can be mentioned.
var devName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

type devLoginRequest struct {
	Name string `json:"name"`
}

// devLogin signs a token for the name in the body: `rtstack dev` only
// (Config.DevLogin), where anyone may be anyone.
func (s *server) devLogin(w http.ResponseWriter, r *http.Request) {
	var req devLoginRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if !devName.MatchString(req.Name) {
		writeError(w, clienterr.Invalid, "name: 1 to 64 letters, digits, '.', '_' or '-'")
		return
	}
	tok, err := s.cfg.Keys.Sign(req.Name, req.Name, false, s.cfg.DevTokenTTL)
	if err != nil {
		s.fail(w, r, "sign dev token", err)
		return
	}
	// The token's own exp (whole seconds), so a client can schedule its
	// refresh without decoding the JWT.
	claims, err := s.cfg.Keys.Verify(tok)
	if err != nil {
		s.fail(w, r, "verify dev token", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":      tok,
		"user":       req.Name,
		"expires_at": claims.ExpiresAt.UnixMilli(),
	})
}
