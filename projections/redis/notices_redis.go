package redis

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections/view"
)

// noticeChannel is the Redis channel change notices go out on.
func (p *Projection) noticeChannel() string { return p.cfg.Prefix + "boards:changed" }

// boardChange returns what folding recs changes on the live boards; ok is
// false when nothing does (edits, deletes, reactions, webhooks).
func boardChange(recs []events.Record) (c view.BoardChange, ok bool) {
	for _, r := range recs {
		var room string
		switch e := r.Event.(type) {
		case *events.MessageSent:
			c.Leaderboard, room = true, e.Room
		case *events.MemberJoined:
			room = e.Room
		case *events.MemberLeft:
			room = e.Room
		default:
			continue
		}
		if !slices.Contains(c.Rooms, room) {
			c.Rooms = append(c.Rooms, room)
		}
	}
	return c, c.Leaderboard || len(c.Rooms) > 0
}

// notify publishes c after the chunk it describes committed, so a reader
// woken by it reads the new state. A lost notice leaves a board stale until
// its next change, so the failure is logged; it never fails the Apply,
// whose state is already committed.
func (p *Projection) notify(ctx context.Context, c view.BoardChange) {
	b, err := json.Marshal(c)
	if err == nil {
		err = p.rdb.Publish(ctx, p.noticeChannel(), b).Err()
	}
	if err != nil {
		p.cfg.Logger.Warn("redis projection: board change notice lost", "err", err)
	}
}

// WatchBoards calls changed for every change notice any projector of this
// prefix publishes, on WatchBoards's goroutine (it must not block), until
// ctx ends; it then returns nil. Notices published while not subscribed
// are lost, so changed is called with All each time the subscription is
// (re)established. A malformed notice counts as All.
func (p *Projection) WatchBoards(ctx context.Context, changed func(view.BoardChange)) error {
	ps := p.rdb.Subscribe(ctx, p.noticeChannel())
	defer func() { _ = ps.Close() }()
	ch := ps.ChannelWithSubscriptions(goredis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("redis projection: board notices: subscription closed")
			}
			switch m := m.(type) {
			case *goredis.Subscription:
				if m.Kind == "subscribe" {
					changed(view.BoardChange{All: true})
				}
			case *goredis.Message:
				var c view.BoardChange
				if json.Unmarshal([]byte(m.Payload), &c) != nil {
					c = view.BoardChange{All: true}
				}
				changed(c)
			}
		}
	}
}
