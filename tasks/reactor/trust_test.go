package reactor_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
)

// Two events of one message (a duplicate append, by hand here) make one
// task id, so the receiver gets one delivery with one X-Rtstack-Delivery.
func TestDuplicateEventsDeliverOnce(t *testing.T) {
	e := setup(t)
	wreg := prometheus.NewRegistry()
	e.worker(wreg)
	e.append(&events.WebhookRegistered{
		Envelope:  events.Envelope{ID: "reg-w1", Room: "r1", User: "admin", Time: 1},
		WebhookID: "w1", URL: e.target.URL + "/w1", Secret: taskstest.Keyring.Seal("s1", "w1"),
	})
	for _, evID := range []string{"ev-a", "ev-b"} { // one message id, two event ids
		e.append(&events.MessageSent{
			Envelope:  events.Envelope{ID: evID, Room: "r1", User: "alice", Time: 1000},
			MessageID: "m-dup", ClientID: "c1", Text: "once",
		})
	}
	e.reactor("grp", e.rc.URL, nil)
	// Two webhook tasks of one id arrive: one is done, the other skipped as
	// done.
	testsvc.Eventually(t, 30*time.Second, "both duplicates handled", func() bool {
		return testsvc.Sum(t, wreg, "rtstack_worker_tasks_total", "outcome", "done") == 1 &&
			testsvc.Sum(t, wreg, "rtstack_worker_tasks_total", "outcome", "skipped") == 1
	})
	reqs := e.target.Requests()
	if len(reqs) != 1 || e.target.Distinct() != 1 {
		t.Fatalf("%d deliveries with %d delivery ids, want 1 and 1", len(reqs), e.target.Distinct())
	}
}

// After a WebhookRemoved nothing more is delivered to the webhook, live or
// when a reactor of a new group replays the log from the start.
func TestRemovedWebhookGetsNothingMore(t *testing.T) {
	e := setup(t)
	wreg := prometheus.NewRegistry()
	e.worker(wreg)
	e.register("r1", "w1")
	e.send("r1", "a1")
	e.append(&events.WebhookRemoved{Envelope: events.Envelope{ID: "rm-w1", Room: "r1", User: "admin", Time: 2}, WebhookID: "w1"})
	e.send("r1", "a2") // after the removal: no delivery
	e.register("r1", "w2")
	e.send("r1", "a3") // to w2 only: the marker that the reactor got past a2
	e.reactor("grp", e.rc.URL, nil)
	testsvc.Eventually(t, 30*time.Second, "a1 to w1 and a3 to w2", func() bool { return e.target.Distinct() == 2 })
	e.caughtUp("grp")
	check := func() {
		t.Helper()
		got := delivered(t, e.target)
		if got["m-a1"] != 1 || got["m-a2"] != 0 || got["m-a3"] != 1 {
			t.Fatalf("deliveries %v, want m-a1 and m-a3 once, m-a2 never", got)
		}
	}
	check()

	// A replay in another group folds the removal too: its tasks are the
	// same ids (skipped as done), and none is for a2.
	e.reactor("replay", e.rc.URL, nil)
	e.caughtUp("replay")
	testsvc.Eventually(t, 20*time.Second, "the replayed tasks skipped", func() bool {
		return testsvc.Sum(t, wreg, "rtstack_worker_tasks_total", "outcome", "skipped") == 2
	})
	check()
}
