package gateway

import (
	"fmt"
	"strings"
	"time"
)

// tokenExpiry is a connection's token deadline, guarded by the conn's mu.
// Its timer is a time.AfterFunc: no goroutine runs until it fires, so an
// idle connection costs no more than before.
type tokenExpiry struct {
	at    time.Time
	timer *time.Timer
	// gen is bumped on every arm and on teardown: a callback armed earlier
	// (a refresh raced it) finds another gen and does nothing.
	gen uint64
}

type tokenExpiringFrame struct {
	Type string `json:"type"`
	InMS int64  `json:"in_ms"`
}

// armExpiry schedules the token_expiring frame TokenWarning before exp
// (at once when less is left) and the 4001 close at exp. A zero exp
// schedules nothing.
func (c *conn) armExpiry(exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armExpiryLocked(exp)
}

func (c *conn) armExpiryLocked(exp time.Time) {
	c.stopExpiryLocked()
	c.expiry.at = exp
	if exp.IsZero() || c.closing {
		return
	}
	gen := c.expiry.gen
	warnIn := max(time.Until(exp)-c.s.cfg.TokenWarning, 0)
	c.expiry.timer = time.AfterFunc(warnIn, func() { c.expiryDue(gen, true) })
}

func (c *conn) stopExpiryLocked() {
	if c.expiry.timer != nil {
		c.expiry.timer.Stop()
		c.expiry.timer = nil
	}
	c.expiry.gen++
}

// expiryDue runs on the timer: first the warning (and the timer re-armed
// for exp), then the close.
func (c *conn) expiryDue(gen uint64, warn bool) {
	c.mu.Lock()
	if gen != c.expiry.gen || c.closing {
		c.mu.Unlock()
		return
	}
	left := time.Until(c.expiry.at)
	if warn && left > 0 {
		c.expiry.timer = time.AfterFunc(left, func() { c.expiryDue(gen, false) })
		c.mu.Unlock()
		c.push(mustJSON(tokenExpiringFrame{Type: "token_expiring", InMS: left.Milliseconds()}))
		return
	}
	c.expiry.timer = nil
	// What is queued still goes out: it was sent while the token was good.
	c.closeLocked(CloseTokenExpired, "token expired", true)
	c.mu.Unlock()
}

type tokenRefreshedFrame struct {
	Type string `json:"type"`
	InMS int64  `json:"in_ms"`
}

// refresh replaces the connection's token with f.Token: same sub, and a
// rooms claim that still allows every room the connection uses. Otherwise
// it answers an error and the old token (and its expiry) stays.
func (c *conn) refresh(f *clientFrame) {
	claims, err := c.s.cfg.Keys.Verify(f.Token)
	if err != nil {
		c.fail("refresh", err, f.ClientID)
		return
	}
	if claims.User() != c.user {
		c.sendError(CodeForbidden, "refresh: the token is for another user", f.ClientID)
		return
	}
	if lost := c.roomsOutside(claims.Rooms); len(lost) > 0 {
		c.sendError(CodeForbidden, fmt.Sprintf("refresh: the new token does not allow %s, which this connection uses: leave first",
			strings.Join(lost, ", ")), f.ClientID)
		return
	}
	exp := claims.Expiry()
	c.mu.Lock()
	c.access = claims.Rooms
	c.armExpiryLocked(exp)
	c.mu.Unlock()
	c.pushWait(mustJSON(tokenRefreshedFrame{Type: "token_refreshed", InMS: time.Until(exp).Milliseconds()}))
}
