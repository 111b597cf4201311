package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// useSecret makes the environment's processes and its test tokens use
// secret.
func (d *devEnv) useSecret(t *testing.T, secret string, opts ...auth.Option) {
	t.Helper()
	keys, err := auth.NewKeys(secret, opts...)
	if err != nil {
		t.Fatal(err)
	}
	d.keys = keys
	d.env = append(d.env, "JWT_SECRET="+secret)
}

// refusal runs rtstack with env, which must make it exit non-zero at once,
// and returns what it printed.
func refusal(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("rtstack %v with %v was not refused (err %v):\n%s", args, env, err, out)
	}
	return string(out)
}

// TestStartRefusals: settings that would leave a deployment open are
// refused before anything starts, with a message that says why and what
// to do.
func TestStartRefusals(t *testing.T) {
	port := strings.TrimPrefix(testsvc.FreeAddr(t), "127.0.0.1")
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"short secret outside dev", []string{"JWT_SECRET=tooshort"}, []string{"gateway"},
			[]string{"JWT_SECRET is 8 bytes", "at least 32"}},
		{"dev on every interface", []string{"HTTP_ADDR=0.0.0.0" + port}, []string{"dev"},
			[]string{"refuses HTTP_ADDR 0.0.0.0" + port, "DEV_ALLOW_REMOTE=true"}},
		{"dev on an empty host", []string{"HTTP_ADDR=" + port}, []string{"dev"},
			[]string{"not a loopback address"}},
		{"token with a bad room pattern", nil, []string{"token", "--user", "alice", "--rooms", "lobby,bad room"},
			[]string{"--rooms", `"bad room"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := refusal(t, tt.env, tt.args...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestDevRemoteAudienceAndRooms runs rtstack dev on every interface with
// DEV_ALLOW_REMOTE, JWT_AUDIENCE and JWT_ISSUER: it starts; a token without
// the audience and issuer is refused; one from `rtstack token --rooms`
// (same environment) works, limited to its rooms.
func TestDevRemoteAudienceAndRooms(t *testing.T) {
	d := newDevEnv(t)
	port := strings.TrimPrefix(d.httpAddr, "127.0.0.1")
	d.env = append(d.env, "HTTP_ADDR=0.0.0.0"+port, "DEV_ALLOW_REMOTE=true", "JWT_AUDIENCE=rtstack-e2e", "JWT_ISSUER=https://id.e2e.example")
	d.start(t)

	// d.keys sign without aud and iss.
	if code := d.get(t, "alice", "/api/leaderboard", nil); code != http.StatusUnauthorized {
		t.Fatalf("token without audience and issuer: HTTP %d, want 401", code)
	}
	tok := d.run(t, "token", "--user", "alice", "--rooms", "lobby,team-*")
	if code := d.getWith(t, tok, "/api/rooms/team-x/messages", nil); code != http.StatusOK {
		t.Fatalf("history of an allowed room: HTTP %d", code)
	}
	if code := d.getWith(t, tok, "/api/rooms/secret/messages", nil); code != http.StatusForbidden {
		t.Fatalf("history of a room outside the claim: HTTP %d, want 403", code)
	}
	alice := d.dialWith(t, tok)
	alice.send(map[string]any{"type": "join", "room": "secret"})
	if e := alice.await("error"); e["code"] != "forbidden" {
		t.Fatalf("join outside the claim: %v", e)
	}
	alice.send(map[string]any{"type": "join", "room": "lobby"})
	if j := alice.await("joined"); j["user"] != "alice" {
		t.Fatalf("joined frame %v", j)
	}
}

// metric sums the samples of name on /metrics whose labels contain every
// one of labels (`reason="x"`).
func (d *devEnv) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && match {
			sum += v
		}
	}
	return sum
}

// TestDevMentionsHonourMembershipAndClaim: through rtstack dev, a mention
// notifies a member of the room only on connections whose token allows the
// room, and a mention of a non-member notifies nobody.
func TestDevMentionsHonourMembershipAndClaim(t *testing.T) {
	d := newDevEnv(t)
	d.start(t)
	connections := func(n float64) {
		t.Helper()
		testsvc.Eventually(t, 20*time.Second, fmt.Sprintf("%v connections", n), func() bool {
			return d.metric(t, "rtstack_gateway_connections") == n
		})
	}
	// bob becomes a member of lobby (membership outlives the connection),
	// then is online only with a token limited to team-x.
	bobOpen := d.dial(t, "bob")
	bobOpen.send(map[string]any{"type": "join", "room": "lobby"})
	bobOpen.await("joined")
	_ = bobOpen.c.Close()
	connections(0)

	alice := d.dial(t, "alice")
	bob := d.dialWith(t, d.run(t, "token", "--user", "bob", "--rooms", "team-x"))
	dave := d.dial(t, "dave") // online, never a member of lobby
	for user, c := range map[string]*wsClient{"alice": alice, "bob": bob, "dave": dave} {
		c.send(map[string]any{"type": "join", "room": "team-x"})
		c.awaitJoin(user)
	}
	alice.send(map[string]any{"type": "join", "room": "lobby"})
	alice.awaitJoin("alice")

	alice.send(map[string]any{"type": "send", "room": "lobby", "text": "hi @bob and @dave", "client_id": "l1"})
	alice.await("ack")
	testsvc.Eventually(t, 30*time.Second, "bob's lobby mention held back by the gateway", func() bool {
		return d.metric(t, "rtstack_gateway_drops_total", `reason="forbidden_room"`) == 1
	})
	testsvc.Eventually(t, 30*time.Second, "dave's mention skipped by the reactor", func() bool {
		return d.metric(t, "rtstack_reactor_mentions_skipped_total") == 1
	})

	alice.send(map[string]any{"type": "send", "room": "team-x", "text": "and here @bob", "client_id": "t1"})
	alice.await("ack")
	if n := bob.await("notification"); n["room"] != "team-x" {
		t.Fatalf("bob's notification %v, want only the team-x one", n)
	}
}
