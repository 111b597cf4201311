package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// binPath is the rtstack binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	testsvc.RunWithBinary(m, ".", &binPath, "-race")
}

// proc is a running rtstack subcommand.
type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &stderr}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return p
}

func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("rtstack did not exit on %v:\n%s", sig, p.stderr)
	}
}

func waitListening(t *testing.T, addr string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s:\n%s", addr, p.stderr)
}

func appendMessages(t *testing.T, addr string, from, n int) []events.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	log := kafka.NewLog(cl, kafkatest.Codec(t), kafka.DefaultTopic)
	var out []events.Position
	for i := from; i < from+n; i++ {
		pos, err := log.Append(ctx, &events.MessageSent{
			Envelope:  events.Envelope{ID: fmt.Sprint("e", i), Room: "room-1", User: "alice", Time: int64(1000 + i)},
			MessageID: fmt.Sprint("m", i), ClientID: fmt.Sprint("c", i), Text: fmt.Sprint("hello ", i),
		})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, pos)
	}
	return out
}

// The log survives SIGTERM and kill -9 of the process that holds it, and
// offsets continue where they stopped; log dump and kcat | log decode print
// every event.
func TestLogSurvivesStopAndKill(t *testing.T) {
	testsvc.Integration(t)
	dataDir := t.TempDir()
	addr := testsvc.FreeAddr(t)
	env := []string{"DATA_DIR=" + dataDir, "BROKER_ADDR=" + addr, "PARTITIONS=3"}

	var all []events.Position
	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, 0} {
		p := start(t, env, "broker")
		waitListening(t, addr, p)
		got := appendMessages(t, addr, round*5, 5)
		if len(all) > 0 {
			last := all[len(all)-1]
			if got[0].Partition != last.Partition || got[0].Offset != last.Offset+1 {
				t.Fatalf("round %d: offsets do not continue: last %v, next %v", round, last, got[0])
			}
		}
		all = append(all, got...)
		if sig == 0 {
			break
		}
		p.stop(t, sig)
	}

	cmd := exec.Command(binPath, "log", "dump", "--from-beginning", "--room", "room-1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("log dump: %v", err)
	}
	lines := jsonLines(t, out)
	if len(lines) != 15 {
		t.Fatalf("log dump printed %d events, want 15:\n%s", len(lines), out)
	}
	for i, l := range lines {
		if l["type"] != "MessageSent" || l["event"].(map[string]any)["text"] != fmt.Sprint("hello ", i) {
			t.Fatalf("line %d = %v", i, l)
		}
	}

	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
	meta, err := exec.Command(kcat, "-b", addr, "-L").CombinedOutput()
	if err != nil || !strings.Contains(string(meta), `topic "chat.events" with 3 partitions`) {
		t.Fatalf("kcat -L: %v\n%s", err, meta)
	}
	js, err := exec.Command(kcat, "-b", addr, "-C", "-t", "chat.events", "-J", "-e", "-q").Output()
	if err != nil {
		t.Fatalf("kcat -J: %v", err)
	}
	for _, l := range jsonLines(t, js) {
		h, _ := l["headers"].([]any)
		if len(h) < 4 || h[0] != "event-type" || h[1] != "MessageSent" || h[2] != "event-id" {
			t.Fatalf("kcat -J record without event-type/event-id headers: %v", l)
		}
	}
	framed, err := exec.Command(kcat, "-b", addr, "-C", "-t", "chat.events", "-e", "-q", "-f", "%R%s").Output()
	if err != nil {
		t.Fatalf("kcat -f %%R%%s: %v", err)
	}
	dec := exec.Command(binPath, "log", "decode")
	dec.Stdin = bytes.NewReader(framed)
	decoded, err := dec.Output()
	if err != nil {
		t.Fatalf("log decode: %v", err)
	}
	if got := jsonLines(t, decoded); len(got) != 15 || got[0]["type"] != "MessageSent" {
		t.Fatalf("log decode printed %d lines:\n%s", len(got), decoded)
	}
}

func jsonLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
