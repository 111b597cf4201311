// Package auth signs and verifies the HS256 JWTs that authenticate
// WebSocket and HTTP API clients. Claims: sub (user id, required), name
// (optional display name), admin (optional), rooms (optional room
// patterns), exp (required); aud and iss when the Keys are configured with
// them.
//
// It imports commands (for the room-name rules), never gateway.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretBytes is the shortest JWT secret a deployment should use: HS256
// keys shorter than the hash (32 bytes) can be brute-forced offline from
// any token. The binary refuses shorter ones outside rtstack dev.
const MinSecretBytes = 32

// ErrUnauthorized wraps every reason a token is refused (missing, malformed,
// bad signature, expired, no subject, wrong audience or issuer, a malformed
// rooms claim).
var ErrUnauthorized = errors.New("unauthorized")

// ErrForbidden wraps every action a valid token does not allow (a room
// outside its rooms claim).
var ErrForbidden = errors.New("forbidden")

// Claims are what a verified token says about its holder.
type Claims struct {
	Name  string `json:"name,omitempty"`
	Admin bool   `json:"admin,omitempty"`
	// Rooms, when present, are the only rooms the holder may use: room
	// names where '*' matches any run of characters. Absent (nil) means
	// every room; present but empty means none (omitzero keeps the two
	// apart on the wire).
	Rooms []string `json:"rooms,omitzero"`
	jwt.RegisteredClaims
}

// User returns the subject: the user id.
func (c Claims) User() string { return c.Subject }

// Expiry returns exp, or the zero time for a token without one (Verify
// refuses those).
func (c Claims) Expiry() time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Time
}

// Keys signs and verifies tokens with one HS256 secret. Safe for concurrent
// use.
type Keys struct {
	secret   []byte
	audience string
	issuer   string
	parser   *jwt.Parser
}

// Option configures Keys.
type Option func(*Keys)

// WithAudience makes Verify require aud to contain audience and Sign set
// it. Empty: aud is not checked.
func WithAudience(audience string) Option { return func(k *Keys) { k.audience = audience } }

// WithIssuer makes Verify require iss to be issuer and Sign set it. Empty:
// iss is not checked.
func WithIssuer(issuer string) Option { return func(k *Keys) { k.issuer = issuer } }

// NewKeys returns Keys for secret, which must not be empty.
func NewKeys(secret string, opts ...Option) (*Keys, error) {
	if secret == "" {
		return nil, errors.New("auth: empty JWT secret")
	}
	k := &Keys{secret: []byte(secret)}
	for _, o := range opts {
		o(k)
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(5 * time.Second)}
	if k.audience != "" {
		popts = append(popts, jwt.WithAudience(k.audience))
	}
	if k.issuer != "" {
		popts = append(popts, jwt.WithIssuer(k.issuer))
	}
	k.parser = jwt.NewParser(popts...)
	return k, nil
}

// Sign returns a token for user valid for ttl.
func (k *Keys) Sign(user, name string, admin bool, ttl time.Duration) (string, error) {
	return k.SignClaims(Claims{Name: name, Admin: admin, RegisteredClaims: jwt.RegisteredClaims{Subject: user}}, ttl)
}

// SignClaims returns a token with c's claims valid for ttl from now; the
// times, and the audience and issuer of k, are set here.
func (k *Keys) SignClaims(c Claims, ttl time.Duration) (string, error) {
	now := time.Now()
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	if k.audience != "" {
		c.Audience = jwt.ClaimStrings{k.audience}
	}
	if k.issuer != "" {
		c.Issuer = k.issuer
	}
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
	if err := ValidatePatterns(c.Rooms); err != nil {
		// A claim that cannot be read must not be read as "every room".
		return Claims{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
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
