// Package auth signs and verifies the HS256 JWTs that authenticate
// WebSocket and HTTP API clients. Claims: sub (user id, required), name
// (optional display name), admin (optional), exp (required).
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthorized wraps every reason a token is refused (missing, malformed,
// bad signature, expired, no subject).
var ErrUnauthorized = errors.New("unauthorized")

// Claims are what a verified token says about its holder.
type Claims struct {
	Name  string `json:"name,omitempty"`
	Admin bool   `json:"admin,omitempty"`
	jwt.RegisteredClaims
}

// User returns the subject: the user id.
func (c Claims) User() string { return c.Subject }

// Keys signs and verifies tokens with one HS256 secret. Safe for concurrent
// use.
type Keys struct {
	secret []byte
	parser *jwt.Parser
}

// NewKeys returns Keys for secret, which must not be empty.
func NewKeys(secret string) (*Keys, error) {
	if secret == "" {
		return nil, errors.New("auth: empty JWT secret")
	}
	return &Keys{
		secret: []byte(secret),
		parser: jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second)),
	}, nil
}

// Sign returns a token for user valid for ttl.
func (k *Keys) Sign(user, name string, admin bool, ttl time.Duration) (string, error) {
	now := time.Now()
	c := Claims{Name: name, Admin: admin, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Verify checks token and returns its claims; errors wrap ErrUnauthorized.
func (k *Keys) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, fmt.Errorf("%w: no token", ErrUnauthorized)
	}
	var c Claims
	if _, err := k.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return k.secret, nil }); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if c.Subject == "" {
		return Claims{}, fmt.Errorf("%w: token has no sub", ErrUnauthorized)
	}
	return c, nil
}

// FromRequest returns the token of r: the Authorization Bearer header, else
// the token query parameter (browsers cannot set headers on a WebSocket).
func FromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
	}
	return r.URL.Query().Get("token")
}

// Authenticate verifies r's token. Errors wrap ErrUnauthorized.
func (k *Keys) Authenticate(r *http.Request) (Claims, error) {
	return k.Verify(FromRequest(r))
}
