package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

func lineIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var line struct {
			Type  events.Type `json:"type"`
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if line.Error != "" || line.Type != events.TypeMessageSent {
			t.Fatalf("line %q: want a decoded MessageSent", l)
		}
		ids = append(ids, line.Event.ID)
	}
	return ids
}

func newReaderFixture(t *testing.T, ctx context.Context) (string, *kafka.Log) {
	t.Helper()
	b := kafkatest.Broker(t, "")
	kafkatest.Topic(t, b.Addr(), kafka.DefaultTopic, 1)
	log := kafka.NewLog(kafkatest.Client(t, b.Addr()), kafkatest.Codec(t), kafka.DefaultTopic)
	for i, room := range []string{"room-1", "room-2", "room-1"} {
		if _, err := log.Append(ctx, sentEvent(i, room)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Addr(), log
}

func TestDumpReadsTheWholeLogOfOneRoomAndStops(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, _ := newReaderFixture(t, ctx)
	for _, fromBeginning := range []bool{false, true} { // dump ignores it: always from zero
		lr, err := kafka.OpenLogReader(ctx, kafka.ReaderConfig{
			Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: kafka.DefaultTopic, Codec: kafkatest.Codec(t),
			Room: "room-1", FromBeginning: fromBeginning,
		})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = lr.WriteJSON(ctx, &out)
		lr.Close()
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		if got := strings.Join(lineIDs(t, out.String()), ","); got != "e0,e2" {
			t.Errorf("dump (from-beginning %v) of room-1 = %s, want e0,e2", fromBeginning, got)
		}
	}
}

func TestTailFollowsFromTheEndOrFromTheBeginning(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, log := newReaderFixture(t, ctx)
	appended := 0
	appendNew := func() {
		ev := sentEvent(100+appended, "room-1")
		ev.ID = fmt.Sprint("n", appended)
		appended++
		if _, err := log.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	tail := func(fromBeginning bool, run func(out *testsvc.Buffer)) []string {
		lr, err := kafka.OpenLogReader(ctx, kafka.ReaderConfig{
			Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: kafka.DefaultTopic, Codec: kafkatest.Codec(t),
			Follow: true, FromBeginning: fromBeginning,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer lr.Close()
		tailCtx, stop := context.WithCancel(ctx)
		var out testsvc.Buffer
		done := make(chan error, 1)
		go func() { done <- lr.WriteJSON(tailCtx, &out) }()
		run(&out)
		stop()
		if err := <-done; err != nil {
			t.Errorf("tail ended with %v, want nil on cancel", err)
		}
		return lineIDs(t, out.String())
	}

	// From the end: only what is appended while it runs. The tail fixes its
	// start at its first fetch, so append until one record shows up.
	got := tail(false, func(out *testsvc.Buffer) {
		testsvc.Eventually(t, 10*time.Second, "a record appended during the tail", func() bool {
			if len(lineIDs(t, out.String())) > 0 {
				return true
			}
			appendNew()
			return false
		})
	})
	for _, id := range got {
		if !strings.HasPrefix(id, "n") {
			t.Errorf("tail from the end printed %s, which was in the log before it started (all: %v)", id, got)
		}
	}

	// From the beginning: the whole log, then what is appended.
	before := appended
	got = tail(true, func(out *testsvc.Buffer) {
		testsvc.Eventually(t, 10*time.Second, "the existing records", func() bool { return len(lineIDs(t, out.String())) >= 3+before })
		appendNew()
		testsvc.Eventually(t, 10*time.Second, "the appended record", func() bool { return len(lineIDs(t, out.String())) == 4+before })
	})
	want := []string{"e0", "e1", "e2"}
	for i := range before + 1 {
		want = append(want, fmt.Sprint("n", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tail --from-beginning = %v, want %v", got, want)
	}
}
