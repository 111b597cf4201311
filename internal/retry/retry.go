// Package retry is the one backoff every retry loop in rtstack uses: an
// exponential delay between a floor and a ceiling, optionally jittered, and
// a sleep that ends early when the caller is told to stop. It imports only
// the standard library, so every role may use it.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential delay: Min after the first failure, doubling up
// to Max. With Jitter each delay is drawn from [d/2, d], so many clients
// failing together do not retry in step. The zero value is not usable; set
// Min and Max. A Backoff is not safe for concurrent use: each loop owns one.
type Backoff struct {
	Min, Max time.Duration
	Jitter   bool

	attempt int // failures since the last Reset
}

// Attempt is the number of delays handed out since the last Reset: the
// attempt that just failed, for logs.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts again from Min (after a success).
func (b *Backoff) Reset() { b.attempt = 0 }

// Next returns the delay before the next attempt and counts one failure.
func (b *Backoff) Next() time.Duration {
	d := b.Min << min(b.attempt, 20)
	if d <= 0 || d > b.Max {
		d = b.Max
	}
	b.attempt++
	if b.Jitter {
		d = d/2 + rand.N(d/2+1) //nolint:gosec // G404: retry jitter, not a secret
	}
	return d
}

// Wait sleeps the next delay. It returns false, early, when ctx ends or stop
// (which may be nil) is closed.
func (b *Backoff) Wait(ctx context.Context, stop <-chan struct{}) bool {
	return Sleep(ctx, stop, b.Next())
}

// Sleep waits d; false when ctx ended or stop (which may be nil) closed
// first.
func Sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
