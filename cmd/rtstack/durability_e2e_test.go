package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// joined is a new member of room.
func (d *devEnv) joined(t *testing.T, user, room string) *wsClient {
	t.Helper()
	w := d.dial(t, user)
	w.send(map[string]any{"type": "join", "room": room})
	w.await("joined")
	return w
}

// say sends text to room and returns its ack.
func (w *wsClient) say(room, text string) map[string]any {
	w.t.Helper()
	w.send(map[string]any{"type": "send", "room": room, "text": text, "client_id": text})
	return w.await("ack")
}

// historyTexts is the text of every message of room, oldest first.
func (d *devEnv) historyTexts(t *testing.T, room string) string {
	t.Helper()
	var hist struct{ Messages []map[string]any }
	if code := d.get(t, "bob", "/api/rooms/"+room+"/messages?limit=100", &hist); code != http.StatusOK {
		return fmt.Sprintf("HTTP %d", code)
	}
	texts := make([]string, len(hist.Messages))
	for i, m := range hist.Messages {
		texts[i], _ = m["text"].(string)
	}
	return strings.Join(texts, "|")
}

// awaitTotal waits until room's counters count n messages.
func (d *devEnv) awaitTotal(t *testing.T, room string, n int) {
	t.Helper()
	testsvc.Eventually(t, 30*time.Second, fmt.Sprintf("%d messages counted in %s", n, room), func() bool {
		var c map[string]any
		return d.get(t, "bob", "/api/rooms/"+room+"/counters", &c) == http.StatusOK && c["total"] == float64(n)
	})
}

// TestDevLogLostItsTail: rtstack dev is stopped, a partition's segment
// under DATA_DIR/kafka loses its tail; rtstack project and rtstack react
// alone refuse to start, naming the partition, the offsets and the repair;
// dev starts again: both projections
// are rebuilt from what the log still holds (logged at error level,
// counted), the reactor resumes at the log's end, and the messages sent
// afterwards, which reuse the lost offsets, are in the history and the
// counters.
func TestDevLogLostItsTail(t *testing.T) {
	d := newDevEnv(t)
	p := d.start(t)
	alice := d.joined(t, "alice", "room-1")
	var acks []map[string]any
	for i := range 6 {
		acks = append(acks, alice.say("room-1", fmt.Sprint("old-", i)))
	}
	testsvc.Eventually(t, 30*time.Second, "6 messages in the history", func() bool {
		return d.historyTexts(t, "room-1") == "old-0|old-1|old-2|old-3|old-4|old-5"
	})
	d.awaitTotal(t, "room-1", 6) // both projections hold the whole tail that is lost next
	p.stop(t, syscall.SIGTERM)

	part := int32(acks[0]["partition"].(float64))
	keep := int64(acks[3]["offset"].(float64)) // old-3 and later are lost
	if end := kafkatest.TruncatePartition(t, d.dataDir, kafka.DefaultTopic, part, keep); end != keep {
		t.Fatalf("partition %d cut at %d, want %d", part, end, keep)
	}

	// Alone, the projector and the reactor refuse, saying how to repair.
	b := start(t, d.env, "broker")
	waitListening(t, d.brokerAddr, b)
	lost := fmt.Sprintf("partition %d: position %d, log end %d", part, int64(acks[5]["offset"].(float64))+1, keep)
	// Outside dev the reactor needs its webhook key before anything else.
	alone := append(slices.Clone(d.env), "WEBHOOK_SECRET_KEY="+keyring.NewSpec("e2e"))
	for cmd, repair := range map[string]string{"project": "repair: rtstack rebuild ", "react": "rtstack react --resume-truncated"} {
		out := start(t, alone, cmd).exited(t, time.Minute)
		if !strings.Contains(out, lost) || !strings.Contains(out, repair) {
			t.Errorf("rtstack %s on the truncated log does not name %q and %q:\n%s", cmd, lost, repair, out)
		}
	}
	b.stop(t, syscall.SIGTERM)

	p = d.start(t)
	carol := d.joined(t, "carol", "room-1")
	carol.say("room-1", "new-0")
	if ack := carol.say("room-1", "new-1"); ack["offset"].(float64) > acks[5]["offset"].(float64) {
		t.Fatalf("new-1 at %s: not an offset the lost tail had", pos(ack))
	}
	testsvc.Eventually(t, time.Minute, "the surviving and the new messages in the history", func() bool {
		return d.historyTexts(t, "room-1") == "old-0|old-1|old-2|new-0|new-1"
	})
	d.awaitTotal(t, "room-1", 5)
	for name, want := range map[string]float64{"rtstack_projection_log_truncated_total": 2, "rtstack_reactor_log_truncated_total": 1} {
		if got := d.metric(t, name); got != want {
			t.Errorf("%s = %v, want %v (one per projection, one for the reactor)", name, got, want)
		}
	}
	p.stop(t, syscall.SIGTERM)
	out := p.stderr.String()
	// The gateway serves while the projectors check: carol's join may be
	// appended before, moving the end they see past keep.
	lostAt := fmt.Sprintf("partition %d: position %d, log end ", part, int64(acks[5]["offset"].(float64))+1)
	rebuilt := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["level"] == "ERROR" &&
			l["msg"] == "the log lost its tail: rebuilding the projection from what it still holds" &&
			strings.Contains(fmt.Sprint(l["err"]), lostAt) {
			rebuilt[fmt.Sprint(l["projection"])] = true
		}
	}
	if !rebuilt["postgres"] || !rebuilt["redis"] {
		t.Errorf("rtstack dev logged the rebuild after the truncation at error level for %v, want postgres and redis:\n%s", rebuilt, out)
	}
}

// sharing returns the environment of a second deployment with its own
// DATA_DIR (so its own log), ports and queues, sharing d's Postgres
// database and Redis prefix.
func (d *devEnv) sharing(t *testing.T) *devEnv {
	t.Helper()
	d2 := *d
	d2.dataDir, d2.httpAddr, d2.brokerAddr = t.TempDir(), testsvc.FreeAddr(t), testsvc.FreeAddr(t)
	rabbitPfx := fmt.Sprintf("e2e%d.", time.Now().UnixNano())
	t.Cleanup(func() { testsvc.DeleteQueues(rabbitPfx) })
	d2.env = append(append([]string(nil), d.env...),
		"DATA_DIR="+d2.dataDir, "HTTP_ADDR="+d2.httpAddr, "BROKER_ADDR="+d2.brokerAddr, "RABBIT_PREFIX="+rabbitPfx)
	return &d2
}

// exited waits for p to end by itself and returns its output.
func (p *proc) exited(t *testing.T, within time.Duration) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("rtstack exited 0, want an error:\n%s", p.stderr)
		}
		return p.stderr.String()
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-done
		t.Fatalf("rtstack did not stop by itself within %s:\n%s", within, p.stderr)
		return ""
	}
}

// TestDevSecondDeploymentIsRefused: a second rtstack dev with another
// DATA_DIR (another log) but the same Postgres database and Redis prefix
// refuses to start, naming both logs and the settings that separate them,
// and the first's history is untouched; a deliberate rebuild with
// --adopt-log takes the store over, and the first instance notices within
// seconds and stops instead of writing into a version of another log.
func TestDevSecondDeploymentIsRefused(t *testing.T) {
	d1 := newDevEnv(t)
	p1 := d1.start(t)
	alice := d1.joined(t, "alice", "room-1")
	for i := range 3 {
		alice.say("room-1", fmt.Sprint("first-", i))
	}
	want := "first-0|first-1|first-2"
	testsvc.Eventually(t, 30*time.Second, "3 messages in the history", func() bool { return d1.historyTexts(t, "room-1") == want })

	d2 := d1.sharing(t)
	out := start(t, d2.env, "dev").exited(t, time.Minute)
	for _, s := range []string{"the projection store is bound to another log", "POSTGRES_URL", "REDIS_PREFIX", "--adopt-log",
		"on cluster " + kafka.ClusterIDFor(d1.dataDir), "on cluster " + kafka.ClusterIDFor(d2.dataDir)} {
		if !strings.Contains(out, s) {
			t.Errorf("the second rtstack dev's output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "rebuilding the projection") {
		t.Errorf("the second rtstack dev rebuilt the shared store:\n%s", out)
	}
	if got := d1.historyTexts(t, "room-1"); got != want {
		t.Fatalf("the first instance's history after the refused second one: %q, want %q", got, want)
	}

	// The operator means it: the second log's broker alone, and a rebuild
	// that adopts the store.
	b := start(t, d2.env, "broker")
	waitListening(t, d2.brokerAddr, b)
	d2.run(t, "rebuild", "--adopt-log", "all")
	out = p1.exited(t, 30*time.Second)
	if !strings.Contains(out, "no longer bound to the log this projector reads") {
		t.Errorf("the first instance did not say why it stopped:\n%s", out)
	}
	b.stop(t, syscall.SIGTERM)
}
