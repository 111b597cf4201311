package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

func TestCheckTopic(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := kafkatest.Broker(t, "")
	cl := kafkatest.Client(t, b.Addr())

	if _, err := kafka.EnsureTopic(ctx, cl, "good", 6); err != nil {
		t.Fatal(err)
	}
	if warns, err := kafka.CheckTopic(ctx, cl, "good", 6); err != nil || len(warns) > 0 {
		t.Errorf("a topic EnsureTopic created: warnings %v, err %v", warns, err)
	}

	// A topic made by hand: compacted, a size bound, the broker's default
	// retention.ms (7 days).
	compact, size := "compact", "1000000"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, -1, map[string]*string{"cleanup.policy": &compact, "retention.bytes": &size}, "by-hand"); err != nil {
		t.Fatal(err)
	}
	_, err := kafka.CheckTopic(ctx, cl, "by-hand", 6)
	if !errors.Is(err, kafka.ErrTopicConfig) {
		t.Fatalf("compacted, finite, 3 partitions: %v, want ErrTopicConfig", err)
	}
	for _, want := range []string{"3 partitions, 6 are configured", "cleanup.policy=compact", "retention.ms=604800000", "retention.bytes=1000000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	// EnsureTopic leaves an existing topic alone; the check is what tells.
	if _, err := kafka.EnsureTopic(ctx, cl, "by-hand", 6); err != nil {
		t.Fatal(err)
	}
	if _, err := kafka.CheckTopic(ctx, cl, "by-hand", 3); !errors.Is(err, kafka.ErrTopicConfig) || strings.Contains(err.Error(), "partitions") {
		t.Errorf("right count, wrong policy: %v, want ErrTopicConfig without a partition complaint", err)
	}
}

func TestCheckTopicWarnsOfMinISR(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := kafkatest.Client(t, c.ListenAddrs()[0])
	adm := kadm.NewClient(cl)
	unlimited, del := "-1", "delete"
	for topic, isr := range map[string]string{"isr1": "1", "isr2": "2"} {
		if _, err := adm.CreateTopic(ctx, 2, 3, map[string]*string{
			"cleanup.policy": &del, "retention.ms": &unlimited, "retention.bytes": &unlimited, "min.insync.replicas": &isr,
		}, topic); err != nil {
			t.Fatal(err)
		}
	}
	warns, err := kafka.CheckTopic(ctx, cl, "isr1", 2)
	if err != nil {
		t.Fatalf("min ISR 1 is no error: %v", err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "min.insync.replicas=1 with replication factor 3") {
		t.Errorf("warnings %q, want one naming min.insync.replicas=1 and replication factor 3", warns)
	}
	if warns, err := kafka.CheckTopic(ctx, cl, "isr2", 2); err != nil || len(warns) > 0 {
		t.Errorf("min ISR 2 of 3: warnings %v, err %v", warns, err)
	}
}
