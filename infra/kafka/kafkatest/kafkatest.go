// Package kafkatest starts an embedded broker for tests, reached over real
// TCP like any Kafka cluster.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/schemas"
)

// Broker starts an embedded broker on a free loopback port, persisting under
// dir (a fresh temp dir when empty), closed when the test ends.
func Broker(t testing.TB, dir string) *kafka.Broker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b, err := kafka.StartBroker(kafka.BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("embedded broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Client returns a client of addr, closed when the test ends.
func Client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: []string{addr}, DeliveryTimeout: 5 * time.Second}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Topic creates topic with partitions on addr.
func Topic(t testing.TB, addr, topic string, partitions int32) kafka.TopicInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := kafka.EnsureTopic(ctx, Client(t, addr), topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Codec returns the codec of the embedded schemas.
func Codec(t testing.TB) *schemas.Codec {
	t.Helper()
	reg, err := schemas.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return schemas.NewCodec(reg)
}
