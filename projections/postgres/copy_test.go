package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
)

// TestCopyPathEqualsInsertPath: the binary COPY rtstack encodes itself and
// pgx's per-row INSERTs store the same rows, byte for byte (digest), for
// values at the edges of each column: empty and long text, multi-byte and
// invalid UTF-8, NUL, mentions (none, one, several), extreme times and
// offsets, edited and deleted rows.
func TestCopyPathEqualsInsertPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	texts := []string{"", "hi", "héllo wörld ✓ 🦊", strings.Repeat("x", 4096), "nul\x00inside", "bad \xff utf8", "tab\tnew\nline\\"}
	var evs []events.Event
	for i := range 60 { // ≥ the COPY threshold in one batch
		m := sent(i, fmt.Sprint("room-", i%3), fmt.Sprint("user-", i%4), fmt.Sprint("m", i), texts[i%len(texts)])
		m.Mentions = [][]string{nil, {"bob"}, {"ann", "ünï", ""}}[(i/3)%3]
		if i == 7 {
			m.Time = -1 << 62
		}
		if i == 8 {
			m.Time = 1<<63 - 1
		}
		evs = append(evs, m)
	}
	evs = append(evs, edited(60, "room-0", "user-0", "m0", "edited ✓"), deleted(61, "room-1", "user-1", "m1"),
		sent(62, "room-0", "user-2", "m0", "a duplicate keeps the first row"))
	recs := records(evs...)
	for i := range recs {
		recs[i].Offset += 1 << 40 // offsets beyond 32 bits
	}
	end := recs[len(recs)-1].Offset + 1

	copied, _ := open(t)
	if err := copied.Apply(ctx, 0, recs, end); err != nil {
		t.Fatal(err)
	}
	inserted, _ := open(t)
	for i := range recs {
		if err := inserted.Apply(ctx, 0, recs[i:i+1], recs[i].Offset+1); err != nil {
			t.Fatal(err)
		}
	}
	a, err := copied.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := inserted.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("COPY path digest %s, INSERT path %s", a, b)
	}
	hist, err := copied.History(ctx, "room-0", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	v := messageViews(hist)
	want := map[string]msgView{
		"m0": {User: "user-0", Text: "edited ✓", Offset: 1 << 40, Edited: true},
		"m3": {User: "user-3", Text: texts[3], Offset: 1<<40 + 3, Mentions: []string{"bob"}},
		"m6": {User: "user-2", Text: texts[6], Offset: 1<<40 + 6, Mentions: []string{"ann", "ünï", ""}},
	}
	for id, w := range want {
		if got := v[id]; !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %+v, want %+v", id, got, w)
		}
	}
}
