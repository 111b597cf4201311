package view

import "errors"

// Message is one chat message as the history API returns it.
type Message struct {
	MessageID string              `json:"message_id"`
	Room      string              `json:"room"`
	User      string              `json:"user"`
	Text      string              `json:"text"`
	TS        int64               `json:"ts"`
	Partition int32               `json:"partition"`
	Offset    int64               `json:"offset"`
	Edited    bool                `json:"edited"`
	Deleted   bool                `json:"deleted"`
	Reactions map[string][]string `json:"reactions,omitempty"` // emoji → users, sorted
	Mentions  []string            `json:"mentions,omitempty"`
}

// MinuteCount is the number of messages in one minute of event time.
type MinuteCount struct {
	Minute int64 `json:"minute"` // start of the minute, Unix milliseconds
	Count  int64 `json:"count"`
}

// Counters are a room's counters as the counters API returns them.
type Counters struct {
	Room      string        `json:"room"`
	Total     int64         `json:"total"`
	Members   int64         `json:"members"`
	PerMinute []MinuteCount `json:"per_minute"` // oldest first, last 60 minutes of event time
}

// ScoreEntry is one row of a leaderboard.
type ScoreEntry struct {
	User  string `json:"user"`
	Score int64  `json:"score"`
}

// ErrUnknownVersion: a read named a version of a projection that does not
// exist (never built, or dropped). Clients see code unknown_version.
var ErrUnknownVersion = errors.New("no such version of the projection")

// BoardChange says which live boards a committed chunk of the log changed:
// the global leaderboard, the counters of some rooms, or (All) any board,
// after a rebuild swapped the projection or a reader lost notices.
type BoardChange struct {
	All         bool     `json:"all,omitempty"`
	Leaderboard bool     `json:"leaderboard,omitempty"`
	Rooms       []string `json:"rooms,omitempty"`
}
