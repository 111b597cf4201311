package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// TestClusterSurvivesKilledParts runs the shape of `make demo-cluster` (a
// broker process, two projector processes, the reactor, two workers, a
// gateway) under chat load with a webhook, and kills one projector and one
// worker with SIGKILL halfway. The survivors take over: every message is
// projected, the projections equal what a rebuild from the log makes, and
// each message's webhook task is recorded done exactly once.
func TestClusterSurvivesKilledParts(t *testing.T) {
	d := newDevEnv(t)
	d.useSecret(t, "cluster-kill-test-secret-of-32-bytes+")
	d.env = append(d.env, "WEBHOOK_ALLOW_PRIVATE=true") // the hook target listens on loopback
	b := start(t, d.env, "broker")
	waitListening(t, d.brokerAddr, b)
	project1, work1 := start(t, d.env, "project"), start(t, d.env, "work")
	for _, part := range []string{"project", "react", "work"} {
		start(t, d.env, part)
	}
	gw := d.startGateway(t, d.httpAddr)

	hooks := newHookTarget(t)
	if code := gw.postWith(t, gw.token(t, "ops", true), "/api/rooms/load/webhooks", map[string]string{"url": hooks.URL, "secret": "s3cret"}, nil); code != http.StatusCreated {
		t.Fatalf("register webhook: HTTP %d", code)
	}

	// Four senders stay within the per-connection rate limit's burst.
	const senders, each = 4, 50
	clients := make([]*wsClient, senders)
	for i := range clients {
		clients[i] = gw.dial(t, fmt.Sprint("user", i))
		clients[i].send(map[string]any{"type": "join", "room": "load"})
		clients[i].await("joined")
	}
	sendHalf := func(half int) {
		for i, c := range clients {
			for j := half * each / 2; j < (half+1)*each/2; j++ {
				c.send(map[string]any{"type": "send", "room": "load", "text": fmt.Sprintf("u%d-%d", i, j), "client_id": fmt.Sprintf("u%d-%d", i, j)})
			}
		}
		for _, c := range clients {
			for range each / 2 {
				c.await("ack")
			}
		}
	}
	sendHalf(0)
	for _, p := range []*proc{project1, work1} {
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
	}
	sendHalf(1)

	const n = senders * each
	var hist struct{ Messages []map[string]any }
	// A killed member keeps its partitions until its session times out.
	testsvc.Eventually(t, 120*time.Second, "every message projected by the surviving projector", func() bool {
		return gw.get(t, "ops", "/api/rooms/load/messages?limit=500", &hist) == http.StatusOK && len(hist.Messages) == n
	})
	hits := hooks.await(t, n)
	delivered := map[string]bool{}
	for _, h := range hits {
		delivered[h.body["text"].(string)] = true
	}
	if len(delivered) != n {
		t.Errorf("the webhook saw %d distinct messages, want %d", len(delivered), n)
	}
	if done := doneTasks(t, d.env); done != n {
		t.Errorf("%d webhook tasks recorded done, want %d (one per message)", done, n)
	}

	// The Redis projection catches up on its own: its digest is taken once
	// it counted every message too (they are the room's last events).
	var counters struct{ Total int }
	testsvc.Eventually(t, 120*time.Second, "every message counted by the surviving Redis projector", func() bool {
		return gw.get(t, "ops", "/api/rooms/load/counters", &counters) == http.StatusOK && counters.Total == n
	})
	before := map[string]string{"postgres": gw.run(t, "digest", "postgres"), "redis": gw.run(t, "digest", "redis")}
	gw.run(t, "rebuild", "all")
	for target, want := range before {
		if got := gw.run(t, "digest", target); got != want {
			t.Errorf("%s after the kills differs from a rebuild from the log: digest %s, rebuilt %s", target, want, got)
		}
	}
}

// doneTasks counts the task records of the workers in the test's database.
func doneTasks(t *testing.T, env []string) int {
	t.Helper()
	var url string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "POSTGRES_URL="); ok {
			url = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM rtstack_tasks.done WHERE kind = 'webhook'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
