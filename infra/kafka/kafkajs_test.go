package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// kafkajsDir holds the pinned kafkajs and kafkajs-snappy (package.json and
// its lockfile).
const kafkajsDir = "testdata/node"

// TestKafkajsReadsTheSnappyLog is what the README promises a Node consumer:
// kafkajs reads the snappy-compressed log once kafkajs-snappy is
// registered, and cannot without it. (Without SASL: kafkajs insists on the
// mechanism list in the SaslHandshake answer, which kfake leaves empty, so
// it cannot authenticate to the embedded broker; it can to Kafka.)
func TestKafkajsReadsTheSnappyLog(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; this test runs kafkajs against the log (Debian: apt-get install -y nodejs npm)", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(kafkajsDir, "node_modules", "kafkajs-snappy")); err != nil {
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = kafkajsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", kafkajsDir, err, out)
		}
	}

	b := kafkatest.Broker(t, "")
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: []string{b.Addr()}}) // snappy: the default
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kafka.EnsureTopic(ctx, cl, kafka.DefaultTopic, 3); err != nil {
		t.Fatal(err)
	}
	log := kafka.NewLog(cl, kafkatest.Codec(t), kafka.DefaultTopic)
	const n = 12
	for i := range n {
		ev := &events.MessageSent{Envelope: events.Envelope{ID: fmt.Sprint("e", i), Room: fmt.Sprint("room-", i%4), User: "u", Time: int64(i)},
			MessageID: fmt.Sprint("m", i), Text: strings.Repeat("compressible ", 20)}
		if _, err := log.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	node := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "node", append([]string{"consume.js", b.Addr(), kafka.DefaultTopic, fmt.Sprint(n)}, args...)...)
		cmd.Dir = kafkajsDir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return stderr.String(), err
		}
		return string(out), nil
	}
	out, err := node("snappy")
	if err != nil {
		t.Fatalf("kafkajs with kafkajs-snappy: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n {
		t.Fatalf("kafkajs read %d records, want %d:\n%s", len(lines), n, out)
	}
	for _, l := range lines {
		var r struct {
			EventType string
			Magic     int
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.EventType != string(events.TypeMessageSent) || r.Magic != 0 {
			t.Errorf("kafkajs record %s: want event-type %s and the wire format's magic byte 0 (%v)", l, events.TypeMessageSent, err)
		}
	}

	msg, err := node()
	if err == nil || !strings.Contains(strings.ToLower(msg), "snappy") {
		t.Errorf("kafkajs without a snappy codec: err %v, stderr %q; want a failure naming snappy", err, msg)
	}
}
