package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
)

// envValue returns the value of name in the test environment env.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// call sends method path with token and body, decoding a JSON answer into
// into; it returns the status and the raw body.
func (d *devEnv) call(t *testing.T, method, token, path string, body, into any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+d.httpAddr+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if into != nil {
		_ = json.Unmarshal(raw, into)
	}
	return resp.StatusCode, raw
}

type listedWebhooks struct {
	Webhooks []struct {
		ID      string `json:"id"`
		URL     string `json:"url"`
		Created int64  `json:"created"`
	} `json:"webhooks"`
}

// TestWebhookTrust drives rtstack dev as an attacker and an admin would:
// webhooks are an admin's, capped per room, listed without secrets and
// removed through the log; a known secret signs the deliveries but is found
// in none of the stores or outputs — the log's files and `log dump`,
// RabbitMQ's queues and `dlq list`, Postgres, Redis, the process's logs.
func TestWebhookTrust(t *testing.T) {
	d := newDevEnv(t)
	d.env = append(d.env, "WEBHOOKS_PER_ROOM=2")
	p := d.start(t)
	const secret = "known-S3cret-a9f37c1e"
	admin, user := d.token(t, "root", true), d.token(t, "mallory", false)
	good := newHookTarget(t)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound) // permanent: straight to the DLQ
	}))
	t.Cleanup(refusing.Close)
	path := "/api/rooms/sec/webhooks"

	if code, _ := d.call(t, "POST", user, path, map[string]string{"url": good.URL, "secret": secret}, nil); code != http.StatusForbidden {
		t.Fatalf("register by a non-admin: HTTP %d, want 403", code)
	}
	if code, _ := d.call(t, "GET", user, path, nil, nil); code != http.StatusForbidden {
		t.Fatalf("list by a non-admin: HTTP %d, want 403", code)
	}
	if code, _ := d.call(t, "POST", admin, path, map[string]string{"url": good.URL}, nil); code != http.StatusBadRequest {
		t.Fatalf("webhook without a secret: HTTP %d, want 400", code)
	}
	var reg struct {
		ID string `json:"webhook_id"`
	}
	if code, raw := d.call(t, "POST", admin, path, map[string]string{"url": good.URL, "secret": secret}, &reg); code != http.StatusCreated {
		t.Fatalf("register: HTTP %d %s", code, raw)
	}
	goodID := reg.ID
	if code, raw := d.call(t, "POST", admin, path, map[string]string{"url": refusing.URL, "secret": secret}, nil); code != http.StatusCreated {
		t.Fatalf("register the second: HTTP %d %s", code, raw)
	}
	var list listedWebhooks
	testsvc.Eventually(t, 20*time.Second, "both webhooks listed", func() bool {
		list = listedWebhooks{}
		code, _ := d.call(t, "GET", admin, path, nil, &list)
		return code == http.StatusOK && len(list.Webhooks) == 2
	})
	if list.Webhooks[0].ID != goodID || list.Webhooks[0].URL != good.URL || list.Webhooks[0].Created == 0 {
		t.Fatalf("list %+v", list)
	}
	var refusal struct {
		Error struct{ Code string } `json:"error"`
	}
	if code, raw := d.call(t, "POST", admin, path, map[string]string{"url": good.URL, "secret": secret}, &refusal); code != http.StatusConflict || refusal.Error.Code != "too_many_webhooks" {
		t.Fatalf("third webhook: HTTP %d %s, want 409 too_many_webhooks", code, raw)
	}

	alice := d.dial(t, "alice")
	alice.send(map[string]any{"type": "join", "room": "sec"})
	alice.await("joined")
	alice.send(map[string]any{"type": "send", "room": "sec", "text": "one", "client_id": "t1"})
	alice.await("ack")
	hit := good.await(t, 1)[0]
	if !tasks.VerifySignature(secret, hit.raw, hit.signature) {
		t.Fatalf("delivery not signed with the registered secret: %+v", hit)
	}
	testsvc.Eventually(t, 20*time.Second, "the refused delivery in the DLQ", func() bool {
		return strings.Count(d.run(t, "dlq", "list"), `"room":"sec"`) == 1
	})

	// Removing a webhook is an event: the list drops it and the next
	// message reaches only the other one (its DLQ entry shows the reactor
	// got past that message).
	if code, raw := d.call(t, "DELETE", user, path+"/"+goodID, nil, nil); code != http.StatusForbidden {
		t.Fatalf("remove by a non-admin: HTTP %d %s", code, raw)
	}
	if code, raw := d.call(t, "DELETE", admin, path+"/wNOSUCH", nil, nil); code != http.StatusNotFound {
		t.Fatalf("remove of an unknown id: HTTP %d %s", code, raw)
	}
	if code, raw := d.call(t, "DELETE", admin, path+"/"+goodID, nil, nil); code != http.StatusOK {
		t.Fatalf("remove: HTTP %d %s", code, raw)
	}
	testsvc.Eventually(t, 20*time.Second, "the removed webhook unlisted", func() bool {
		list = listedWebhooks{}
		code, _ := d.call(t, "GET", admin, path, nil, &list)
		return code == http.StatusOK && len(list.Webhooks) == 1 && list.Webhooks[0].ID != goodID
	})
	alice.send(map[string]any{"type": "send", "room": "sec", "text": "two", "client_id": "t2"})
	alice.await("ack")
	testsvc.Eventually(t, 20*time.Second, "the second refused delivery in the DLQ", func() bool {
		return strings.Count(d.run(t, "dlq", "list"), `"room":"sec"`) == 2
	})
	good.mu.Lock()
	n := len(good.hits)
	good.mu.Unlock()
	if n != 1 {
		t.Fatalf("the removed webhook got %d deliveries, want only the one before removal", n)
	}

	// The secret is nowhere but in the signatures.
	dump, dlq := d.run(t, "log", "dump"), d.run(t, "dlq", "list")
	if !strings.Contains(dump, "WebhookRegistered") || !strings.Contains(dump, "WebhookRemoved") || !strings.Contains(dump, "rtsk1:") {
		t.Fatalf("log dump lacks the webhook events or their sealed secrets:\n%s", dump)
	}
	places := map[string]string{"rtstack log dump": dump, "rtstack dlq list": dlq}
	places["the log's files"] = string(readTree(t, filepath.Join(envValue(d.env, "DATA_DIR"), "kafka")))
	pgDump, err := exec.Command("pg_dump", "--data-only", envValue(d.env, "POSTGRES_URL")).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !strings.Contains(string(pgDump), refusing.URL) {
		t.Fatal("pg_dump does not show the webhooks table: the search would prove nothing")
	}
	places["Postgres"] = string(pgDump)
	places["Redis"] = redisContent(t, d)
	places["RabbitMQ"] = rabbitContent(t, d.rabbitPfx)
	p.stop(t, syscall.SIGTERM)
	places["the process's logs"] = p.stderr.String()
	for where, content := range places {
		if strings.Contains(content, secret) {
			t.Errorf("the webhook secret is in the clear in %s", where)
		}
	}
	info, err := os.Stat(filepath.Join(envValue(d.env, "DATA_DIR"), devKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("dev key file: %v, mode %v; want 0600", err, info)
	}

	// Outside dev, a process that opens secrets refuses to start without
	// the key.
	cmd := exec.Command(binPath, "work")
	cmd.Env = append(append(os.Environ(), d.env...), "JWT_SECRET=dev")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "WEBHOOK_SECRET_KEY is required") {
		t.Fatalf("rtstack work without WEBHOOK_SECRET_KEY: %v\n%s", err, out)
	}
}

// readTree returns the bytes of every file under dir.
func readTree(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b...)
		return err
	})
	if err != nil || len(all) == 0 {
		t.Fatalf("read %s: %v (%d bytes)", dir, err, len(all))
	}
	return all
}

// redisContent returns every key and value under the test's Redis prefix.
func redisContent(t *testing.T, d *devEnv) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	keys, err := d.rdb.Keys(ctx, d.redisPfx+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("redis keys: %v (%d)", err, len(keys))
	}
	for _, k := range keys {
		var v any
		switch d.rdb.Type(ctx, k).Val() {
		case "string":
			v = d.rdb.Get(ctx, k).Val()
		case "hash":
			v = d.rdb.HGetAll(ctx, k).Val()
		case "set":
			v = d.rdb.SMembers(ctx, k).Val()
		case "zset":
			v = d.rdb.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "list":
			v = d.rdb.LRange(ctx, k, 0, -1).Val()
		}
		fmt.Fprintf(&b, "%s=%v\n", k, v)
	}
	return b.String()
}

// rabbitContent returns the bodies and headers of every message in the
// test's queues, taken and given back.
func rabbitContent(t *testing.T, prefix string) string {
	t.Helper()
	conn, err := amqp.Dial(testsvc.Rabbit(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	seen := 0
	for _, q := range []string{prefix + "tasks", prefix + "tasks.dead", prefix + "tasks.delay.100ms", prefix + "tasks.delay.200ms"} {
		var got []amqp.Delivery
		for {
			m, ok, err := ch.Get(q, false)
			if err != nil {
				t.Fatalf("get from %s: %v", q, err)
			}
			if !ok {
				break
			}
			got = append(got, m)
			fmt.Fprintf(&b, "%s %v %s\n", q, m.Headers, m.Body)
		}
		seen += len(got)
		for _, m := range got {
			_ = m.Nack(false, true)
		}
	}
	if seen == 0 {
		t.Fatal("no message in RabbitMQ: the search would prove nothing")
	}
	return b.String()
}

// TestSameClientIDOnTwoConnections sends each client id on two connections
// of one user at once: exactly one event per id reaches the log, and both
// connections are acknowledged with its message id and position.
func TestSameClientIDOnTwoConnections(t *testing.T) {
	d := newDevEnv(t)
	d.start(t)
	a, b := d.dial(t, "dana"), d.dial(t, "dana")
	for _, c := range []*wsClient{a, b} {
		// The second join of a member may append nothing (no joined
		// frame); both are acknowledged.
		c.send(map[string]any{"type": "join", "room": "dup", "client_id": "join"})
		c.await("ack")
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, c := range []*wsClient{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := c.c.WriteJSON(map[string]any{"type": "send", "room": "dup", "text": fmt.Sprint("x", i), "client_id": fmt.Sprint("cid-", i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	acks := func(c *wsClient) map[string]string {
		out := map[string]string{}
		for len(out) < n {
			f := c.await("ack")
			out[f["client_id"].(string)] = fmt.Sprint(f["message_id"], "@", pos(f))
		}
		return out
	}
	ackA, ackB := acks(a), acks(b)
	for id, v := range ackA {
		if ackB[id] != v {
			t.Errorf("client id %s acked as %s on one connection, %s on the other", id, v, ackB[id])
		}
	}
	sent := 0
	for _, line := range strings.Split(d.run(t, "log", "dump", "--room", "dup"), "\n") {
		if strings.Contains(line, `"type":"MessageSent"`) {
			sent++
		}
	}
	if sent != n {
		t.Fatalf("%d MessageSent events in the log for %d client ids, want exactly %d", sent, n, n)
	}
}
