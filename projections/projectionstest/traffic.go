package projectionstest

import (
	"fmt"
	"math/rand/v2"

	"github.com/rtstack/rtstack/events"
)

// Traffic is a deterministic, messy mix of chat traffic in rooms
// "room-0" … "room-<rooms-1>": duplicates, edits and deletes by strangers,
// reactions toggled, members coming and going, webhooks registered.
type Traffic struct {
	rng   *rand.Rand
	n     int
	ts    int64
	sent  map[string][]*events.MessageSent // room → messages
	rooms int
}

// NewTraffic returns the generator for seed.
func NewTraffic(seed uint64, rooms int) *Traffic {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b9)) //nolint:gosec // G404: reproducible test traffic, not a secret
	return &Traffic{rng: rng, sent: map[string][]*events.MessageSent{}, rooms: rooms, ts: 1_700_000_000_000}
}

// Events returns the next n events.
func (g *Traffic) Events(n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

// Next returns the next event.
func (g *Traffic) Next() events.Event {
	g.n++
	g.ts += int64(g.rng.IntN(50))
	room := fmt.Sprintf("room-%d", g.rng.IntN(g.rooms))
	user := fmt.Sprintf("user-%d", g.rng.IntN(12))
	e := events.Envelope{ID: fmt.Sprintf("ev-%d", g.n), Room: room, User: user, Time: g.ts}
	msgs := g.sent[room]
	pick := func() *events.MessageSent { return msgs[g.rng.IntN(len(msgs))] }
	r := g.rng.IntN(100)
	switch {
	case r < 45 || len(msgs) == 0:
		id := fmt.Sprintf("m-%d", g.n)
		if len(msgs) > 0 && g.rng.IntN(30) == 0 {
			id = pick().MessageID // a duplicate, maybe from someone else
		}
		ev := &events.MessageSent{Envelope: e, MessageID: id, ClientID: fmt.Sprint("c", g.n), Text: fmt.Sprintf("hello %d from %s", g.n, user)}
		if g.rng.IntN(4) == 0 {
			ev.Mentions = []string{fmt.Sprintf("user-%d", g.rng.IntN(12))}
		}
		g.sent[room] = append(msgs, ev)
		return ev
	case r < 55:
		m := pick()
		if g.rng.IntN(5) > 0 {
			e.User = m.User
		}
		return &events.MessageEdited{Envelope: e, MessageID: m.MessageID, Text: fmt.Sprintf("edited %d", g.n)}
	case r < 60:
		m := pick()
		if g.rng.IntN(3) > 0 {
			e.User = m.User
		}
		return &events.MessageDeleted{Envelope: e, MessageID: m.MessageID}
	case r < 75:
		return &events.ReactionAdded{Envelope: e, MessageID: pick().MessageID, Emoji: []string{"👍", "🎉", "❤"}[g.rng.IntN(3)]}
	case r < 80:
		return &events.ReactionRemoved{Envelope: e, MessageID: pick().MessageID, Emoji: []string{"👍", "🎉", "❤"}[g.rng.IntN(3)]}
	case r < 92:
		return &events.MemberJoined{Envelope: e}
	case r < 98:
		return &events.MemberLeft{Envelope: e}
	default:
		return &events.WebhookRegistered{Envelope: e, WebhookID: fmt.Sprint("wh-", g.n), URL: "https://example.com/hook", Secret: "s"}
	}
}

// UniqueSends counts the distinct (room, message id) sent so far.
func (g *Traffic) UniqueSends() int {
	n := 0
	for _, msgs := range g.sent {
		seen := map[string]bool{}
		for _, m := range msgs {
			if !seen[m.MessageID] {
				seen[m.MessageID] = true
				n++
			}
		}
	}
	return n
}
