package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// TestSCRAMBrokerEndToEnd runs rtstack dev with credentials, so its
// embedded broker requires SCRAM: every client of the process (gateway
// producer and tail, both projectors, the reactor, the health check) gets
// in with them, the producer compresses as KAFKA_COMPRESSION says, every
// consumer group shows lag 0 to an admin client once the chat is handled,
// and an operator's command without the credentials is refused.
func TestSCRAMBrokerEndToEnd(t *testing.T) {
	d := newDevEnv(t)
	creds := []string{"KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "KAFKA_SASL_USER=rtstack", "KAFKA_SASL_PASSWORD=s3cret"}
	d.env = append(append(d.env, creds...), "KAFKA_COMPRESSION=zstd")
	d.start(t)

	c := d.dial(t, "alice")
	c.send(map[string]any{"type": "join", "room": "lobby"})
	c.await("joined")
	const n = 20
	for i := range n {
		c.send(map[string]any{"type": "send", "room": "lobby", "text": fmt.Sprint("m", i), "client_id": fmt.Sprint("c", i)})
		c.await("ack")
	}
	var hist struct{ Messages []map[string]any }
	testsvc.Eventually(t, 20*time.Second, "history projected", func() bool {
		return d.get(t, "alice", "/api/rooms/lobby/messages?limit=100", &hist) == http.StatusOK && len(hist.Messages) == n
	})

	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: []string{d.brokerAddr},
		SASL: kafka.SASL{Mechanism: kafka.SASLScramSHA256, User: "rtstack", Password: "s3cret"}},
		kgo.ConsumeTopics(kafka.DefaultTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, group := range []string{"rtstack-projector-postgres", "rtstack-projector-redis", "rtstack-reactor"} {
		testsvc.Eventually(t, 20*time.Second, group+" lag 0 as kadm reads it", func() bool {
			return kafkatest.GroupLag(t, cl, group, kafka.DefaultTopic) == 0
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil || fs.NumRecords() == 0 {
		t.Fatalf("read the log with credentials: %v, %d records", err, fs.NumRecords())
	}
	fs.EachRecord(func(r *kgo.Record) {
		if got := r.Attrs.CompressionType(); got != 4 {
			t.Fatalf("record at %d/%d compressed with codec %d, want zstd (4)", r.Partition, r.Offset, got)
		}
	})

	// The operator's tools use the same settings.
	dump := d.run(t, "log", "dump", "--from-beginning", "--room", "lobby")
	if lines := strings.Count(dump, `"type":"MessageSent"`); lines != n {
		t.Errorf("log dump with credentials printed %d messages, want %d:\n%s", lines, n, dump)
	}
	cmd := exec.Command(binPath, "log", "dump", "--from-beginning")
	cmd.Env = append(append(os.Environ(), d.env...), "KAFKA_SASL_MECHANISM=", "KAFKA_SASL_USER=", "KAFKA_SASL_PASSWORD=")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("log dump without credentials succeeded:\n%s", out)
	}
}
