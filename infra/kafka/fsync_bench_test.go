package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
)

// fsyncPair is two embedded brokers side by side, one syncing every
// produce to disk before the ack (the default), one not, so each benchmark
// measures both in the same run, on the same disk and CPU.
type fsyncPair struct {
	names   [2]string
	clients [2]*kgo.Client
}

func newFsyncPair(b *testing.B, opts ...kgo.Opt) fsyncPair {
	b.Helper()
	var p fsyncPair
	for i, noFsync := range []bool{false, true} {
		br, err := kafka.StartBroker(kafka.BrokerConfig{Addr: "127.0.0.1:0", DataDir: b.TempDir(), NoFsync: noFsync})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(br.Close)
		kafkatest.Topic(b, br.Addr(), "bench", 1)
		p.names[i] = fmt.Sprintf("fsync=%v", !noFsync)
		p.clients[i] = kafkatest.Client(b, br.Addr(), opts...)
	}
	return p
}

func benchRecord() *kgo.Record {
	return &kgo.Record{Topic: "bench", Key: []byte("room-1"), Value: make([]byte, 200)}
}

// BenchmarkAckLatency: one produce at a time, waiting for its ack (what a
// chat send waits for before the client's ack), alternating between the
// brokers; reports p50 and p99 of each and the fsync/no-fsync ratio.
func BenchmarkAckLatency(b *testing.B) {
	p := newFsyncPair(b)
	ctx := context.Background()
	lat := [2][]time.Duration{}
	for range b.N {
		for i, cl := range p.clients {
			start := time.Now()
			if err := cl.ProduceSync(ctx, benchRecord()).FirstErr(); err != nil {
				b.Fatal(err)
			}
			lat[i] = append(lat[i], time.Since(start))
		}
	}
	b.StopTimer()
	var p50s [2]float64
	for i := range lat {
		slices.Sort(lat[i])
		p50s[i] = us(lat[i][len(lat[i])/2])
		b.ReportMetric(p50s[i], "p50-µs/"+p.names[i])
		b.ReportMetric(us(lat[i][len(lat[i])*99/100]), "p99-µs/"+p.names[i])
	}
	b.ReportMetric(p50s[0]/p50s[1], "p50-ratio")
}

// BenchmarkProduceThroughput: b.N records produced to each broker with
// up to 1000 in flight (many senders at once); reports records/s of each
// and the fsync/no-fsync ratio.
func BenchmarkProduceThroughput(b *testing.B) {
	p := newFsyncPair(b, kgo.MaxBufferedRecords(1000))
	ctx := context.Background()
	var rates [2]float64
	for i, cl := range p.clients {
		var wg sync.WaitGroup
		var failed error
		var mu sync.Mutex
		start := time.Now()
		for range b.N {
			wg.Add(1)
			cl.Produce(ctx, benchRecord(), func(_ *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if failed != nil {
			b.Fatal(failed)
		}
		rates[i] = float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(rates[i], "rec/s/"+p.names[i])
	}
	b.ReportMetric(rates[0]/rates[1], "throughput-ratio")
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
