// Package httpserve builds the HTTP servers of rtstack with the limits no
// handler may forget: timeouts for reading the header, reading the whole
// request and writing the answer, an idle timeout between requests, and a
// bound on every request body. A WebSocket handler lifts the deadlines for
// its own connection (gateway.Server does, with http.ResponseController,
// before the upgrade). It imports only the standard library, so every role
// may use it.
package httpserve

import (
	"cmp"
	"errors"
	"net/http"
	"time"
)

// Defaults of Config.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 20 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxBodyBytes      = 64 << 10
)

// Config bounds a server; zero fields take the defaults.
type Config struct {
	// ReadHeaderTimeout bounds reading a request's header. Default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a body
	// that trickles in is cut when it runs out. Default 20s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its header to the end
	// of its answer. Default 30s.
	WriteTimeout time.Duration
	// IdleTimeout bounds a kept-alive connection waiting for the next
	// request. Default 120s.
	IdleTimeout time.Duration
	// MaxBodyBytes bounds every request body; reading past it fails (a
	// handler answers 413). Default 64 KiB.
	MaxBodyBytes int64
}

// Validate reports negative fields.
func (c Config) Validate() error {
	if c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 || c.MaxBodyBytes < 0 {
		return errors.New("httpserve: timeouts and MaxBodyBytes must not be negative")
	}
	return nil
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, DefaultReadTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	return c
}

// New returns a server of h with cfg's limits; the caller serves and shuts
// it down.
func New(h http.Handler, cfg Config) (*http.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes)
		}
		h.ServeHTTP(w, r)
	})
	return &http.Server{
		Handler:           limited,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
	}, nil
}
