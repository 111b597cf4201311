package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections/postgres"
	"github.com/rtstack/rtstack/projections/view"
)

func records(evs ...events.Event) []events.Record {
	out := make([]events.Record, len(evs))
	for i, ev := range evs {
		out[i] = events.Record{Position: events.Position{Partition: 0, Offset: int64(i)}, Event: ev}
	}
	return out
}

func sent(n int, room, user, id, text string) *events.MessageSent {
	return &events.MessageSent{Envelope: env(fmt.Sprint("e", n), room, user, int64(1000+n)), MessageID: id, Text: text}
}
func edited(n int, room, user, id, text string) *events.MessageEdited {
	return &events.MessageEdited{Envelope: env(fmt.Sprint("e", n), room, user, int64(1000+n)), MessageID: id, Text: text}
}
func deleted(n int, room, user, id string) *events.MessageDeleted {
	return &events.MessageDeleted{Envelope: env(fmt.Sprint("e", n), room, user, int64(1000+n)), MessageID: id}
}
func reacted(n int, room, user, id, emoji string) *events.ReactionAdded {
	return &events.ReactionAdded{Envelope: env(fmt.Sprint("e", n), room, user, int64(1000+n)), MessageID: id, Emoji: emoji}
}
func unreacted(n int, room, user, id, emoji string) *events.ReactionRemoved {
	return &events.ReactionRemoved{Envelope: env(fmt.Sprint("e", n), room, user, int64(1000+n)), MessageID: id, Emoji: emoji}
}
func joinedEv(n int, room, user string) *events.MemberJoined {
	return &events.MemberJoined{Envelope: env(fmt.Sprint("e", n), room, user, int64(1000+n))}
}
func leftEv(n int, room, user string) *events.MemberLeft {
	return &events.MemberLeft{Envelope: env(fmt.Sprint("e", n), room, user, int64(1000+n))}
}

// msgView is what a fold case checks of one message.
type msgView struct {
	User, Text      string
	Offset          int64
	Edited, Deleted bool
	Reactions       map[string][]string
	Mentions        []string
}

func messageViews(ms []view.Message) map[string]msgView {
	out := map[string]msgView{}
	for _, m := range ms {
		out[m.MessageID] = msgView{m.User, m.Text, m.Offset, m.Edited, m.Deleted, m.Reactions, m.Mentions}
	}
	return out
}

func TestFoldRules(t *testing.T) {
	withMentions := sent(0, "r", "alice", "m1", "hi @bob")
	withMentions.Mentions = []string{"bob"}
	cases := []struct {
		name    string
		evs     []events.Event
		want    map[string]msgView // room "r" history
		members []string           // room "r"
	}{
		{"duplicate send keeps the first row",
			[]events.Event{sent(0, "r", "alice", "m1", "first"), sent(1, "r", "bob", "m1", "second")},
			map[string]msgView{"m1": {User: "alice", Text: "first", Offset: 0}}, nil},
		{"edit by the author",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), edited(1, "r", "alice", "m1", "hello")},
			map[string]msgView{"m1": {User: "alice", Text: "hello", Edited: true}}, nil},
		{"edit by a non-author is a no-op",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), edited(1, "r", "mallory", "m1", "pwned")},
			map[string]msgView{"m1": {User: "alice", Text: "hi"}}, nil},
		{"edit after a duplicate send by its sender is a no-op",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), sent(1, "r", "mallory", "m1", "x"), edited(2, "r", "mallory", "m1", "pwned")},
			map[string]msgView{"m1": {User: "alice", Text: "hi"}}, nil},
		{"edit of a deleted message is a no-op",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), deleted(1, "r", "alice", "m1"), edited(2, "r", "alice", "m1", "back")},
			map[string]msgView{"m1": {User: "alice", Deleted: true}}, nil},
		{"delete by a non-author is a no-op",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), deleted(1, "r", "mallory", "m1")},
			map[string]msgView{"m1": {User: "alice", Text: "hi"}}, nil},
		{"edit from another room is a no-op",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), edited(1, "elsewhere", "alice", "m1", "moved")},
			map[string]msgView{"m1": {User: "alice", Text: "hi"}}, nil},
		{"edit or reaction before the message exists is a no-op",
			[]events.Event{edited(0, "r", "alice", "m1", "early"), reacted(1, "r", "bob", "m1", "👍"), sent(2, "r", "alice", "m1", "hi")},
			map[string]msgView{"m1": {User: "alice", Text: "hi", Offset: 2}}, nil},
		{"reactions are a set",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), reacted(1, "r", "bob", "m1", "👍"), reacted(2, "r", "bob", "m1", "👍"),
				reacted(3, "r", "carol", "m1", "👍"), unreacted(4, "r", "carol", "m1", "👍"), unreacted(5, "r", "dave", "m1", "🎉"), reacted(6, "r", "alice", "m1", "🎉")},
			map[string]msgView{"m1": {User: "alice", Text: "hi", Reactions: map[string][]string{"👍": {"bob"}, "🎉": {"alice"}}}}, nil},
		{"a user's distinct reactions on a message are capped",
			capped(),
			map[string]msgView{"m1": {User: "alice", Text: "hi", Reactions: cappedWant()}}, nil},
		{"delete drops reactions, later reactions are no-ops",
			[]events.Event{sent(0, "r", "alice", "m1", "hi"), reacted(1, "r", "bob", "m1", "👍"), deleted(2, "r", "alice", "m1"), reacted(3, "r", "carol", "m1", "🎉")},
			map[string]msgView{"m1": {User: "alice", Deleted: true}}, nil},
		{"mentions kept, cleared by delete",
			[]events.Event{withMentions, sent(1, "r", "bob", "m2", "@alice yo"), deleted(2, "r", "bob", "m2")},
			map[string]msgView{"m1": {User: "alice", Text: "hi @bob", Mentions: []string{"bob"}}, "m2": {User: "bob", Offset: 1, Deleted: true}}, nil},
		{"join and leave are idempotent",
			[]events.Event{joinedEv(0, "r", "alice"), joinedEv(1, "r", "alice"), joinedEv(2, "r", "bob"), leftEv(3, "r", "bob"), leftEv(4, "r", "carol"), leftEv(5, "r", "bob"), joinedEv(6, "r", "dave")},
			map[string]msgView{}, []string{"alice", "dave"}},
		{"NUL and invalid UTF-8 are stored, not fatal",
			[]events.Event{sent(0, "r", "alice", "m1", "a\x00b\xffc")},
			map[string]msgView{"m1": {User: "alice", Text: "a\uFFFDb\uFFFDc"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, _ := open(t)
			recs := records(tc.evs...)
			n := int64(len(recs))
			// Active version: one batch, then the same batch again (must be skipped).
			for range 2 {
				if err := p.Apply(ctx, 0, recs, n); err != nil {
					t.Fatal(err)
				}
			}
			// A second version: one record per batch.
			st, version, err := p.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range recs {
				if err := st.Apply(ctx, 0, recs[i:i+1], int64(i+1)); err != nil {
					t.Fatal(err)
				}
			}
			active, err := p.Active(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d1, err1 := p.DigestVersion(ctx, active)
			d2, err2 := p.DigestVersion(ctx, version)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if d1 != d2 {
				t.Errorf("one batch and one record per batch differ: %s vs %s", d1, d2)
			}

			hist, err := p.History(ctx, "r", 100, "")
			if err != nil {
				t.Fatal(err)
			}
			got := messageViews(hist)
			for id, w := range tc.want {
				g, ok := got[id]
				if !ok {
					t.Errorf("message %s missing; history %+v", id, hist)
					continue
				}
				if len(w.Reactions) == 0 {
					w.Reactions = nil
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("message %s = %+v, want %+v", id, g, w)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("history has %d messages, want %d", len(got), len(tc.want))
			}
			members, err := p.Members(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != 0 || len(tc.members) != 0 {
				if !reflect.DeepEqual(members, tc.members) {
					t.Errorf("members = %v, want %v", members, tc.members)
				}
			}
			cps, err := p.Checkpoints(ctx)
			if err != nil || cps[0] != n {
				t.Errorf("checkpoints %v (%v), want partition 0 at %d", cps, err, n)
			}
		})
	}
}

// TestDuplicateAgainstTableOnCopyPath: a big batch (COPY) repeating a
// message already in the table falls back to loading it, keeping the first.
func TestDuplicateAgainstTableOnCopyPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, _ := open(t)
	var evs []events.Event
	for i := range 40 {
		evs = append(evs, sent(i, "r", "alice", fmt.Sprint("m", i), "hi"))
	}
	evs = append(evs, sent(40, "r", "mallory", "m3", "dup"), edited(41, "r", "mallory", "m3", "pwned"))
	for i := 42; i < 82; i++ {
		evs = append(evs, sent(i, "r", "bob", fmt.Sprint("m", i), "yo"))
	}
	recs := records(evs...)
	if err := p.Apply(ctx, 0, recs[:40], 40); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, 0, recs[35:], int64(len(recs))); err != nil {
		t.Fatal(err)
	}
	hist, err := p.History(ctx, "r", 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 80 {
		t.Fatalf("%d messages, want 80", len(hist))
	}
	v := messageViews(hist)["m3"]
	if v.User != "alice" || v.Text != "hi" || v.Edited {
		t.Errorf("m3 = %+v, want alice's unedited first row", v)
	}
}

func TestHistoryPagingAndAuthor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, _ := open(t)
	var evs []events.Event
	for i := range 120 {
		room := "r"
		if i%4 == 3 {
			room = "other"
		}
		evs = append(evs, sent(i, room, fmt.Sprint("u", i%3), fmt.Sprint("m", i), fmt.Sprint("text ", i)))
	}
	if err := p.Apply(ctx, 0, records(evs...), int64(len(evs))); err != nil {
		t.Fatal(err)
	}
	var all []view.Message
	before := ""
	for pages := 0; ; pages++ {
		page, err := p.History(ctx, "r", 25, before)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		for i := 1; i < len(page); i++ {
			if page[i].Offset <= page[i-1].Offset {
				t.Fatalf("page not oldest first: %d after %d", page[i].Offset, page[i-1].Offset)
			}
		}
		all = append(page, all...)
		before = page[0].MessageID
	}
	if len(all) != 90 {
		t.Fatalf("paged %d messages of room r, want 90", len(all))
	}
	for i, m := range all {
		if m.Room != "r" || (i > 0 && m.Offset <= all[i-1].Offset) {
			t.Fatalf("message %d: %+v out of order or wrong room", i, m)
		}
	}
	if newest, _ := p.History(ctx, "r", 0, ""); len(newest) != postgres.DefaultHistoryLimit || newest[len(newest)-1].MessageID != "m118" {
		t.Errorf("default page: %d messages ending %v", len(newest), newest[len(newest)-1].MessageID)
	}
	if none, err := p.History(ctx, "r", 10, "no-such-id"); err != nil || len(none) != 0 {
		t.Errorf("unknown before: %v, %v", none, err)
	}

	if err := p.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	user, found, err := p.Author(ctx, "r", "m4")
	if err != nil || !found || user != "u1" {
		t.Errorf("Author(r, m4) = %q %v %v, want u1", user, found, err)
	}
	if _, found, err := p.Author(ctx, "r", "m3"); err != nil || found {
		t.Errorf("Author of a message of another room: found=%v err=%v", found, err)
	}
	if _, found, err := p.Author(ctx, "r", "nope"); err != nil || found {
		t.Errorf("Author of unknown message: found=%v err=%v", found, err)
	}
}

func TestMembership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, _ := open(t)
	// Offsets 0..3: ann joins, bob joins, ann joins again, bob leaves.
	evs := []events.Event{joinedEv(0, "r", "ann"), joinedEv(1, "r", "bob"), joinedEv(2, "r", "ann"), leftEv(3, "r", "bob")}
	if err := p.Apply(ctx, 0, records(evs...), int64(len(evs))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		room, user string
		member     bool
	}{
		{"r", "ann", true},
		{"r", "bob", false},
		{"other", "ann", false},
		{"r", "nobody", false},
	}
	for _, tt := range tests {
		pos, member, err := p.Membership(ctx, tt.room, tt.user)
		if err != nil || member != tt.member {
			t.Errorf("Membership(%s, %s) = %v, %v; want %v", tt.room, tt.user, member, err, tt.member)
		}
		if tt.member && pos.Offset > 2 {
			t.Errorf("Membership(%s, %s) at %v: want the join that made them a member", tt.room, tt.user, pos)
		}
	}
}

// TestFoldDoesNotDependOnBatching: the same messy log cut into batches at
// random points gives byte-identical state (digest) every time.
func TestFoldDoesNotDependOnBatching(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, _ := open(t)
	g := newGen(7, 5) // few rooms: many edits, deletes and reactions per message
	evs := make([]events.Event, 3000)
	for i := range evs {
		evs[i] = g.Next()
	}
	recs := records(evs...)
	if err := p.Apply(ctx, 0, recs, int64(len(recs))); err != nil {
		t.Fatal(err)
	}
	active, _ := p.Active(ctx)
	want, err := p.DigestVersion(ctx, active)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 3 {
		st, version, err := p.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for from := 0; from < len(recs); {
			to := min(len(recs), from+1+rng.IntN([]int{3, 50, 700}[round]))
			// Overlap the previous batch sometimes: replays below the checkpoint are skipped.
			start := max(0, from-rng.IntN(3))
			if err := st.Apply(ctx, 0, recs[start:to], int64(to)); err != nil {
				t.Fatal(err)
			}
			from = to
		}
		got, err := p.DigestVersion(ctx, version)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("round %d: batching changed the state: %s vs %s", round, got, want)
		}
		if err := p.Abandon(ctx, version); err != nil {
			t.Fatal(err)
		}
	}
}

// capEmoji are more distinct emoji than one user may put on one message.
var capEmoji = []string{"👍", "🎉", "😀", "😂", "❤️", "🔥", "👀", "🚀", "✅", "💯", "🙏", "🤔"}

// capped: bob puts 12 emoji on m1 (the last two are past the cap), takes
// back the first and one that never counted, then adds a 13th: room for
// exactly one more.
func capped() []events.Event {
	evs := []events.Event{sent(0, "r", "alice", "m1", "hi")}
	for i, e := range capEmoji {
		evs = append(evs, reacted(1+i, "r", "bob", "m1", e))
	}
	n := len(evs)
	return append(evs, unreacted(n, "r", "bob", "m1", capEmoji[0]), unreacted(n+1, "r", "bob", "m1", capEmoji[11]),
		reacted(n+2, "r", "bob", "m1", "🌈"), reacted(n+3, "r", "bob", "m1", capEmoji[10]))
}

func cappedWant() map[string][]string {
	want := map[string][]string{"🌈": {"bob"}}
	for _, e := range capEmoji[1:events.MaxReactionsPerUser] {
		want[e] = []string{"bob"}
	}
	return want
}
