package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rtstack/rtstack/gateway/auth"
)

// allows reports whether the connection's token allows room (its rooms
// claim; without one every room).
func (c *conn) allows(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return auth.RoomsAllow(c.access, room)
}

// checkAccess answers a frame about a room the token does not allow with
// error forbidden and reports false.
func (c *conn) checkAccess(room string, ref *string) bool {
	if c.allows(room) {
		return true
	}
	c.sendError(CodeForbidden, fmt.Sprintf("the token does not allow room %s", room), ref)
	return false
}

// roomsOutside lists the rooms the connection uses (joined, or counters
// subscribed) that patterns would not allow, sorted.
func (c *conn) roomsOutside(patterns []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for r := range c.rooms {
		if !auth.RoomsAllow(patterns, r) {
			out = append(out, r)
		}
	}
	for key := range c.boards {
		if r, ok := strings.CutPrefix(key, boardKey("counters", "")); ok && !auth.RoomsAllow(patterns, r) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}
