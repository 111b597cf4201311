package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
)

// foreignProducer writes one record the way a third-party client does,
// with its own partitioner.
type foreignProducer struct {
	name    string
	placed  bool // its partitioner is murmur2, as rtstack's: the record is accepted
	produce func(t *testing.T, rec *kgo.Record)
}

// kcatProducer produces rec with kcat (librdkafka), with extra -X settings.
func kcatProducer(broker string, conf ...string) func(t *testing.T, rec *kgo.Record) {
	return func(t *testing.T, rec *kgo.Record) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "value.avro")
		if err := os.WriteFile(file, rec.Value, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"-P", "-b", broker, "-t", rec.Topic, "-k", string(rec.Key)}
		for _, h := range rec.Headers {
			args = append(args, "-H", h.Key+"="+string(h.Value))
		}
		for _, c := range conf {
			args = append(args, "-X", c)
		}
		// A file argument is one whole record: the binary value is never split.
		if out, err := exec.Command("kcat", append(args, file)...).CombinedOutput(); err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
	}
}

// kafkaGoProducer produces rec with segmentio/kafka-go and balancer.
func kafkaGoProducer(broker string, balancer kafkago.Balancer) func(t *testing.T, rec *kgo.Record) {
	return func(t *testing.T, rec *kgo.Record) {
		t.Helper()
		w := &kafkago.Writer{Addr: kafkago.TCP(broker), Topic: rec.Topic, Balancer: balancer,
			RequiredAcks: kafkago.RequireAll, BatchTimeout: 10 * time.Millisecond}
		defer w.Close()
		msg := kafkago.Message{Key: rec.Key, Value: rec.Value}
		for _, h := range rec.Headers {
			msg.Headers = append(msg.Headers, kafkago.Header{Key: h.Key, Value: h.Value})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := w.WriteMessages(ctx, msg); err != nil {
			t.Fatalf("kafka-go write: %v", err)
		}
	}
}

// misplacedRoom returns a room that librdkafka's default partitioner
// (CRC32) and sarama's (FNV-1a, kafka-go's Hash) both put in another
// partition than murmur2 does.
func misplacedRoom(t *testing.T, partitions int) string {
	t.Helper()
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	murmur := kafka.NewRoomPartitioner(kafka.DefaultTopic)
	for i := range 100 {
		room := fmt.Sprint("foreign-", i)
		msg := kafkago.Message{Key: []byte(room)}
		m := int(murmur.Partition(room, partitions))
		if (kafkago.CRC32Balancer{}).Balance(msg, ids...) != m && (&kafkago.Hash{}).Balance(msg, ids...) != m {
			return room
		}
	}
	t.Fatal("no room that CRC32 and FNV-1a both misplace")
	return ""
}

// TestDevRefusesMisplacedRecordsAlike: records of one room produced by
// kcat and kafka-go with their default partitioners (CRC32, FNV-1a) land
// outside the room's murmur2 partition; every consumer refuses them the
// same way (projections park them, once each, with the reason; the reactor
// fires no webhook; the gateway delivers them neither live nor on
// recovery; each counts them), while the same clients configured with
// murmur2 are accepted everywhere, in the room's order.
func TestDevRefusesMisplacedRecordsAlike(t *testing.T) {
	d := newDevEnv(t)
	d.start(t)
	const partitions = 3 // PARTITIONS in newDevEnv
	room := misplacedRoom(t, partitions)
	hooks := newHookTarget(t)
	if code := d.postWith(t, d.token(t, "alice", true), "/api/rooms/"+room+"/webhooks", map[string]string{"url": hooks.URL, "secret": "s"}, nil); code != http.StatusCreated { // webhooks are an admin's
		t.Fatalf("register webhook: HTTP %d", code)
	}
	alice := d.dial(t, "alice")
	alice.send(map[string]any{"type": "join", "room": room})
	alice.awaitJoin("alice")
	// say sends text and returns its message frame, which must be the next
	// message alice gets.
	say := func(text string) map[string]any {
		alice.send(map[string]any{"type": "send", "room": room, "text": text, "client_id": text})
		m := alice.await("message")
		if m["text"] != text {
			t.Fatalf("live delivery of %v, want %q", m, text)
		}
		return m
	}
	before := say("before")

	producers := []foreignProducer{
		{name: "kcat-crc32", produce: kcatProducer(d.brokerAddr)},
		{name: "kafka-go-fnv1a", produce: kafkaGoProducer(d.brokerAddr, &kafkago.Hash{})},
		{name: "kcat-murmur2", placed: true, produce: kcatProducer(d.brokerAddr, "topic.partitioner=murmur2_random")},
		{name: "kafka-go-murmur2", placed: true, produce: kafkaGoProducer(d.brokerAddr, kafkago.Murmur2Balancer{})},
	}
	codec := kafkatest.Codec(t)
	var misplaced, placed []string
	for i, p := range producers {
		ev := &events.MessageSent{Envelope: events.Envelope{ID: "ev-" + p.name, Room: room, User: "alice", Time: time.Now().UnixMilli() + int64(i)},
			MessageID: "msg-" + p.name, Text: p.name}
		rec, err := kafka.NewRecord(codec, kafka.DefaultTopic, ev)
		if err != nil {
			t.Fatal(err)
		}
		p.produce(t, rec)
		if p.placed {
			placed = append(placed, p.name)
		} else {
			misplaced = append(misplaced, p.name)
		}
	}
	for _, want := range placed {
		if m := alice.await("message"); m["text"] != want || m["partition"] != before["partition"] {
			t.Fatalf("live after %q: %v, want %s in partition %v", "before", m, want, before["partition"])
		}
	}
	// Every consumer saw and counted both misplaced records.
	n := float64(len(misplaced))
	testsvc.Eventually(t, 30*time.Second, "every consumer counts the misplaced records", func() bool {
		return d.metric(t, "rtstack_gateway_drops_total", `reason="misplaced"`) == n &&
			d.metric(t, "rtstack_reactor_misplaced_records_total") == n &&
			d.metric(t, "rtstack_projection_records_parked_total", `projection="postgres"`, `reason="misplaced"`) == n &&
			d.metric(t, "rtstack_projection_records_parked_total", `projection="redis"`, `reason="misplaced"`) == n
	})
	// Fanned out after the tail dropped the misplaced ones: had they been
	// delivered, they would be queued before it.
	say("after")
	accepted := append(append([]string{"before"}, placed...), "after")

	// Recovery from "before" replays exactly what live delivered.
	bob := d.dial(t, "bob")
	bob.send(map[string]any{"type": "join", "room": room, "since": map[string]any{"partition": before["partition"], "offset": before["offset"]}})
	for _, want := range accepted[1:] {
		if m := bob.await("message"); m["text"] != want {
			t.Fatalf("recovered %v, want %s", m, want)
		}
	}
	bob.send(map[string]any{"type": "send", "room": room, "text": "bob here", "client_id": "b1"})
	if m := bob.await("message"); m["text"] != "bob here" {
		t.Fatalf("recovery delivered %v beyond the room's history", m)
	}
	accepted = append(accepted, "bob here")

	// The reactor fired the accepted messages' webhooks only.
	var texts []string
	testsvc.Eventually(t, 30*time.Second, "a webhook per accepted message", func() bool {
		hooks.mu.Lock()
		defer hooks.mu.Unlock()
		texts = texts[:0]
		for _, h := range hooks.hits {
			texts = append(texts, fmt.Sprint(h.body["text"]))
		}
		return len(texts) >= len(accepted)
	})
	slices.Sort(texts)
	if want := slices.Sorted(slices.Values(accepted)); !slices.Equal(texts, want) {
		t.Errorf("webhooks for %v, want %v", texts, want)
	}

	// History holds the accepted messages, in the room's order.
	var hist struct{ Messages []map[string]any }
	testsvc.Eventually(t, 20*time.Second, "history of the accepted messages", func() bool {
		hist.Messages = nil
		return d.get(t, "alice", "/api/rooms/"+room+"/messages", &hist) == 200 && len(hist.Messages) >= len(accepted)
	})
	var got []string
	for _, m := range hist.Messages {
		got = append(got, fmt.Sprint(m["text"]))
	}
	if !slices.Equal(got, accepted) {
		t.Errorf("history %v, want %v", got, accepted)
	}

	checkParked(t, d.brokerAddr, misplaced, partitions)
}

// checkParked reads the parking topic: each projection parked each
// misplaced record once (park-by names it), with the reason and where the
// record really was.
func checkParked(t *testing.T, broker string, misplaced []string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := kafkatest.Client(t, broker, kgo.ConsumeTopics(kafka.DefaultTopic+projections.DefaultParkSuffix),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	want := 2 * len(misplaced) // postgres and redis
	var parked []*kgo.Record
	for len(parked) < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read parking topic (%d of %d records): %v", len(parked), want, err)
		}
		parked = append(parked, fs.Records()...)
	}
	murmur := kafka.NewRoomPartitioner(kafka.DefaultTopic)
	byPos := map[string][]string{} // source position → the projections that parked it
	for _, r := range parked {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[projections.HeaderParkReason] != string(kafka.ReasonMisplaced) || !slices.Contains(misplaced, h[kafka.HeaderEventID][len("ev-"):]) {
			t.Errorf("parked %s: reason %q (%s)", h[kafka.HeaderEventID], h[projections.HeaderParkReason], h[projections.HeaderParkError])
		}
		if p, _ := strconv.Atoi(h[projections.HeaderParkPartition]); int32(p) == murmur.Partition(string(r.Key), partitions) {
			t.Errorf("parked %s from partition %d, the room's own", h[kafka.HeaderEventID], p)
		}
		pos := h[projections.HeaderParkPartition] + ":" + h[projections.HeaderParkOffset]
		byPos[pos] = append(byPos[pos], h[projections.HeaderParkBy])
	}
	if len(byPos) != len(misplaced) {
		t.Errorf("parked records come from %d positions, want %d: %v", len(byPos), len(misplaced), byPos)
	}
	for pos, by := range byPos {
		if slices.Sort(by); !slices.Equal(by, []string{"postgres", "redis"}) {
			t.Errorf("record %s parked by %v, want once by each projection", pos, by)
		}
	}
}
