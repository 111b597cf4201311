package auth

import (
	"fmt"
	"strings"

	"github.com/rtstack/rtstack/commands"
)

// ValidatePatterns checks a rooms claim: each pattern is a room name in
// which '*' may stand for any run of characters ("lobby", "team-a.*").
func ValidatePatterns(patterns []string) error {
	for _, p := range patterns {
		// With every '*' read as one letter, a pattern must be a room name:
		// anything else could never match one.
		if err := commands.ValidateRoom(strings.ReplaceAll(p, "*", "a")); err != nil {
			return fmt.Errorf("rooms claim: pattern %q: %w", p, err)
		}
	}
	return nil
}

// AllowsRoom reports whether c's rooms claim lets its holder use room:
// always without the claim, else when some pattern matches the whole name.
func (c Claims) AllowsRoom(room string) bool {
	return RoomsAllow(c.Rooms, room)
}

// CheckRoom is AllowsRoom as an error wrapping ErrForbidden.
func (c Claims) CheckRoom(room string) error {
	if c.AllowsRoom(room) {
		return nil
	}
	return fmt.Errorf("%w: the token does not allow room %s", ErrForbidden, room)
}

// RoomsAllow reports whether a rooms claim (nil: no claim) allows room.
func RoomsAllow(patterns []string, room string) bool {
	if patterns == nil {
		return true
	}
	for _, p := range patterns {
		if matchPattern(p, room) {
			return true
		}
	}
	return false
}

// matchPattern matches name against p, where '*' is any run (possibly
// empty) of characters and every other byte stands for itself: no other
// metacharacters, so a pattern cannot be more than it reads as.
func matchPattern(p, name string) bool {
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == name
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(name) < len(first)+len(last) || !strings.HasPrefix(name, first) || !strings.HasSuffix(name, last) {
		return false
	}
	// The middle parts in order, leftmost first, within what lies between
	// the fixed prefix and suffix: leftmost matching leaves the most room
	// for the parts after it.
	rest := name[len(first) : len(name)-len(last)]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, part)
		if i < 0 {
			return false
		}
		rest = rest[i+len(part):]
	}
	return true
}
