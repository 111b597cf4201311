package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAsOfVersionsEndToEnd: against a running rtstack dev, `rebuild all
// --as-of P:O` and `rebuild redis --as-of TIME` build read-only versions
// that the API reads with ?version= (history, counters, leaderboard) as
// the log was at that point while the active versions move on; `versions
// list` shows them with their point; `versions drop` removes one (its
// reads are then 404) and refuses the active one.
func TestAsOfVersionsEndToEnd(t *testing.T) {
	d := newDevEnv(t)
	d.start(t)
	first := appendMessages(t, d.brokerAddr, 0, 5)
	last := appendMessages(t, d.brokerAddr, 5, 3)
	after := fmt.Sprintf("%d:%d", last[2].Partition, last[2].Offset)
	var board struct {
		Entries []struct {
			User  string
			Score int
		}
	}
	if code := d.get(t, "bob", "/api/leaderboard?after="+after, &board); code != 200 || len(board.Entries) != 1 || board.Entries[0].Score != 8 {
		t.Fatalf("live leaderboard: HTTP %d %+v, want alice 8", code, board)
	}
	var hist struct{ Messages []map[string]any }
	if code := d.get(t, "bob", "/api/rooms/room-1/messages?after="+after, &hist); code != 200 || len(hist.Messages) != 8 {
		t.Fatalf("live history: HTTP %d, %d messages, want 8", code, len(hist.Messages))
	}

	cut := fmt.Sprintf("%d:%d", first[4].Partition, first[4].Offset)
	names := strings.Fields(d.run(t, "rebuild", "all", "--as-of", cut))
	if len(names) != 2 || !strings.HasPrefix(names[0], "rtstack_v") || !strings.HasPrefix(names[1], "v") {
		t.Fatalf("rebuild all --as-of printed %q, want a Postgres then a Redis version", names)
	}
	pgVersion, redisVersion := names[0], names[1]
	// Event times are 1000+i ms: as of 1.004 s is the first five messages.
	byTime := d.run(t, "rebuild", "redis", "--as-of", "1970-01-01T00:00:01.004Z")

	for _, v := range []string{redisVersion, byTime} {
		if code := d.get(t, "bob", "/api/leaderboard?version="+v, &board); code != 200 || len(board.Entries) != 1 || board.Entries[0].Score != 5 {
			t.Errorf("leaderboard at %s: HTTP %d %+v, want alice 5", v, code, board)
		}
		var c map[string]any
		if code := d.get(t, "bob", "/api/rooms/room-1/counters?version="+v, &c); code != 200 || c["total"] != float64(5) {
			t.Errorf("counters at %s: HTTP %d %v, want total 5", v, code, c)
		}
	}
	if code := d.get(t, "bob", "/api/rooms/room-1/messages?version="+pgVersion, &hist); code != 200 || len(hist.Messages) != 5 {
		t.Errorf("history at %s: HTTP %d, %d messages, want 5", pgVersion, code, len(hist.Messages))
	}
	// The active versions are untouched, and the live projector keeps going.
	more := appendMessages(t, d.brokerAddr, 8, 1)
	after = fmt.Sprintf("%d:%d", more[0].Partition, more[0].Offset)
	if code := d.get(t, "bob", "/api/leaderboard?after="+after, &board); code != 200 || board.Entries[0].Score != 9 {
		t.Errorf("live leaderboard after the as-of builds: HTTP %d %+v, want alice 9", code, board)
	}
	if code := d.get(t, "bob", "/api/leaderboard?version="+redisVersion, &board); code != 200 || board.Entries[0].Score != 5 {
		t.Errorf("the as-of version moved with the live log: %+v", board)
	}

	rows := map[string][]string{} // version → its fields
	for _, line := range strings.Split(d.run(t, "versions", "list"), "\n") {
		if f := strings.Fields(line); len(f) == 5 {
			rows[f[1]] = f
		}
	}
	for v, asOf := range map[string]string{pgVersion: cut, redisVersion: cut, byTime: "1970-01-01T00:00:01.004Z"} {
		if f := rows[v]; len(f) != 5 || f[2] != "as-of" || f[3] != asOf || f[4] == "-" {
			t.Errorf("versions list row of %s = %q, want as-of %s with its creation time", v, f, asOf)
		}
	}
	d.run(t, "versions", "drop", redisVersion)
	if code := d.get(t, "bob", "/api/leaderboard?version="+redisVersion, nil); code != http.StatusNotFound {
		t.Errorf("leaderboard of a dropped version: HTTP %d, want 404", code)
	}
	if code := d.get(t, "bob", "/api/rooms/room-1/messages?version=rtstack_v999", nil); code != http.StatusNotFound {
		t.Errorf("history of an unknown version: HTTP %d, want 404", code)
	}
	if list := d.run(t, "versions", "list", "redis"); strings.Contains(list, redisVersion+" ") {
		t.Errorf("dropped version still listed:\n%s", list)
	}
	active := ""
	for _, line := range strings.Split(d.run(t, "versions", "list", "postgres"), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "active" {
			active = f[1]
		}
	}
	cmd := exec.Command(binPath, "versions", "drop", active)
	cmd.Env = append(os.Environ(), d.env...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "active") {
		t.Errorf("versions drop of the active version %q: %v\n%s", active, err, out)
	}
}
