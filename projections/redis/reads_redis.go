package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rtstack/rtstack/projections/view"
)

// Leaderboard limits: limit <= 0 means DefaultLimit; more than MaxLimit is
// cut to MaxLimit.
const (
	DefaultLimit = 10
	MaxLimit     = 1000
)

// Counters returns room's counters from the active version: total messages,
// members, and one entry per minute of the Window (oldest first, zero
// minutes included) ending at the room's newest event minute. A room that
// never had a message has no per-minute entries.
func (p *Projection) Counters(ctx context.Context, room string) (view.Counters, error) {
	return p.CountersAt(ctx, "", room)
}

// CountersAt is Counters of one version ("" = the active one); an unknown
// version is an error wrapping view.ErrUnknownVersion.
func (p *Projection) CountersAt(ctx context.Context, version, room string) (view.Counters, error) {
	out := view.Counters{Room: room, PerMinute: []view.MinuteCount{}}
	res, err := p.run(ctx, countersScript, p.cfg.Prefix, room, version).Slice()
	if err != nil {
		return out, fmt.Errorf("redis projection: counters of %s: %w", room, unknownVersion(err))
	}
	if len(res) < 3 {
		return out, fmt.Errorf("redis projection: counters of %s: short reply", room)
	}
	if out.Total, err = strconv.ParseInt(toString(res[0]), 10, 64); err != nil {
		return out, fmt.Errorf("redis projection: counters of %s: total: %w", room, err)
	}
	members, ok := res[1].(int64)
	if !ok {
		return out, fmt.Errorf("redis projection: counters of %s: members %T", room, res[1])
	}
	out.Members = members
	newestStr := toString(res[2])
	if newestStr == "" {
		return out, nil
	}
	newest, err := strconv.ParseInt(newestStr, 10, 64)
	if err != nil {
		return out, fmt.Errorf("redis projection: counters of %s: newest: %w", room, err)
	}
	counts := make(map[int64]int64, (len(res)-3)/2)
	for i := 3; i+1 < len(res); i += 2 {
		m, err1 := strconv.ParseInt(toString(res[i]), 10, 64)
		c, err2 := strconv.ParseInt(toString(res[i+1]), 10, 64)
		if err1 != nil || err2 != nil {
			return out, fmt.Errorf("redis projection: counters of %s: bucket %v=%v", room, res[i], res[i+1])
		}
		counts[m] = c
	}
	for m := newest - p.span; m <= newest; m += 60_000 {
		out.PerMinute = append(out.PerMinute, view.MinuteCount{Minute: m, Count: counts[m]})
	}
	return out, nil
}

// Leaderboard returns the users who sent the most messages, all rooms,
// highest first (ties by user id ascending).
func (p *Projection) Leaderboard(ctx context.Context, limit int) ([]view.ScoreEntry, error) {
	return p.board(ctx, "", "lb:sent", limit)
}

// LeaderboardAt is Leaderboard of one version ("" = the active one).
func (p *Projection) LeaderboardAt(ctx context.Context, version string, limit int) ([]view.ScoreEntry, error) {
	return p.board(ctx, version, "lb:sent", limit)
}

// RoomLeaderboard returns the users who sent the most messages in room.
func (p *Projection) RoomLeaderboard(ctx context.Context, room string, limit int) ([]view.ScoreEntry, error) {
	return p.board(ctx, "", "r:"+room+":lb", limit)
}

// RoomLeaderboardAt is RoomLeaderboard of one version ("" = the active
// one).
func (p *Projection) RoomLeaderboardAt(ctx context.Context, version, room string, limit int) ([]view.ScoreEntry, error) {
	return p.board(ctx, version, "r:"+room+":lb", limit)
}

// ReactionsBoard returns the users whose messages received the most
// reactions.
func (p *Projection) ReactionsBoard(ctx context.Context, limit int) ([]view.ScoreEntry, error) {
	return p.board(ctx, "", "lb:rx", limit)
}

func (p *Projection) board(ctx context.Context, version, suffix string, limit int) ([]view.ScoreEntry, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	res, err := p.run(ctx, boardScript, p.cfg.Prefix, suffix, limit, version).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis projection: leaderboard %s: %w", suffix, unknownVersion(err))
	}
	out := make([]view.ScoreEntry, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		s, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("redis projection: leaderboard %s: score %q: %w", suffix, res[i+1], err)
		}
		out = append(out, view.ScoreEntry{User: res[i], Score: -int64(s)})
	}
	return out, nil
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// unknownVersion wraps view.ErrUnknownVersion into a script's answer that
// the version it was asked for does not exist.
func unknownVersion(err error) error {
	msg := err.Error()
	if strings.HasPrefix(msg, "RTSTACK version ") && strings.HasSuffix(msg, " does not exist") {
		return fmt.Errorf("%s: %w", msg, view.ErrUnknownVersion)
	}
	return err
}
