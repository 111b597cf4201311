package gateway

import (
	"context"
	"fmt"
	"time"
)

// typing relays "user is typing in room" to the room's connections on every
// gateway. It is never appended to the log: a typing hint is worthless a few
// seconds later, so it is not recovered or replayed either. One connection
// may relay one per room per TypingInterval; a sooner one is refused.
func (c *conn) typing(f *clientFrame) {
	if !c.member(f.Room) {
		c.sendError(CodeNotMember, fmt.Sprintf("join %s first", f.Room), f.ClientID)
		return
	}
	now := time.Now()
	if last, ok := c.typedAt[f.Room]; ok && now.Sub(last) < c.s.cfg.TypingInterval {
		c.s.m.drops.WithLabelValues("typing_rate").Inc()
		c.sendError(CodeRateLimited, fmt.Sprintf("typing: at most one per %v per room", c.s.cfg.TypingInterval), f.ClientID)
		return
	}
	if c.typedAt == nil {
		c.typedAt = map[string]time.Time{}
	}
	c.typedAt[f.Room] = now
	frame := mustJSON(typingFrame{Type: "typing", Room: f.Room, User: c.user})
	if c.s.cfg.Signals == nil {
		c.s.BroadcastRoom(f.Room, frame)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.s.cfg.Signals.Signal(ctx, f.Room, frame); err != nil {
		c.s.log.Warn("typing relay", "room", f.Room, "conn", c.id, "err", err)
		c.sendError(CodeUnavailable, "typing could not be relayed", f.ClientID)
	}
}
