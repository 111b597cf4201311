package projections_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
)

// memStore is an in-memory Versioned store recording the event ids applied
// per partition: enough to test the runtime's ordering, skipping, parking
// and swapping without a database.
type memStore struct {
	mu       sync.Mutex
	versions map[string]*memVersion
	active   string
	seq      int
}

type memVersion struct {
	ids map[int32][]string
	cps map[int32]int64
}

var _ projections.Versioned = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{versions: map[string]*memVersion{"v0": newMemVersion()}, active: "v0"}
}

func newMemVersion() *memVersion {
	return &memVersion{ids: map[int32][]string{}, cps: map[int32]int64{}}
}

func (s *memStore) Name() string { return "mem" }

func (s *memStore) Checkpoints(context.Context) (map[int32]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps(s.versions[s.active].cps), nil
}

func maps(m map[int32]int64) map[int32]int64 {
	out := map[int32]int64{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *memStore) Apply(_ context.Context, p int32, recs []events.Record, next int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[s.active].apply(p, recs, next)
}

func (v *memVersion) apply(p int32, recs []events.Record, next int64) error {
	cp := v.cps[p]
	for _, r := range recs {
		if r.Partition != p {
			return fmt.Errorf("record of partition %d in batch of %d", r.Partition, p)
		}
		if r.Offset < cp {
			continue
		}
		v.ids[p] = append(v.ids[p], r.Event.Env().ID)
	}
	if next > cp {
		v.cps[p] = next
	}
	return nil
}

func (s *memStore) Begin(context.Context) (projections.Store, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	name := "v" + strconv.Itoa(s.seq)
	s.versions[name] = newMemVersion()
	return memVersionStore{s, name}, name, nil
}

type memVersionStore struct {
	s    *memStore
	name string
}

func (v memVersionStore) Name() string { return "mem" }
func (v memVersionStore) Checkpoints(context.Context) (map[int32]int64, error) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	return maps(v.s.versions[v.name].cps), nil
}
func (v memVersionStore) Apply(_ context.Context, p int32, recs []events.Record, next int64) error {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	return v.s.versions[v.name].apply(p, recs, next)
}

func (s *memStore) Promote(_ context.Context, version string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nv, act := s.versions[version], s.versions[s.active]
	for p, cp := range act.cps {
		if nv.cps[p] < cp {
			return false, nil
		}
	}
	delete(s.versions, s.active)
	s.active = version
	return true, nil
}

func (s *memStore) Abandon(_ context.Context, version string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.versions, version)
	return nil
}

func (s *memStore) Digest(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions[s.active].digest(), nil
}

func (v *memVersion) digest() string {
	h := sha256.New()
	var ps []int32
	for p := range v.ids {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		fmt.Fprintln(h, p, v.ids[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *memStore) ids() map[int32][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int32][]string{}
	for p, ids := range s.versions[s.active].ids {
		out[p] = slices.Clone(ids)
	}
	return out
}

func joined(i int) *events.MemberJoined {
	return &events.MemberJoined{Envelope: events.Envelope{ID: fmt.Sprint("e", i), Room: fmt.Sprint("room-", i%5), User: "u", Time: int64(1000 + i)}}
}

func TestProjectorAppliesParksAndRebuilds(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := kafkatest.Broker(t, "")
	const topic = "chat.events"
	kafkatest.Topic(t, b.Addr(), topic, 3)
	codec := kafkatest.Codec(t)
	cl := kafkatest.Client(t, b.Addr())
	log := kafka.NewLog(cl, codec, topic)
	for i := range 50 {
		if _, err := log.Append(ctx, joined(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage and an unknown schema id between good events of room-0's partition.
	bad := []*kgo.Record{
		{Topic: topic, Key: []byte("room-0"), Value: []byte("not avro at all")},
		{Topic: topic, Key: []byte("room-0"), Value: []byte{0, 0, 0, 0x27, 0x0f, 1, 2, 3}},
	}
	if err := cl.ProduceSync(ctx, bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for i := 50; i < 100; i++ {
		if _, err := log.Append(ctx, joined(i)); err != nil {
			t.Fatal(err)
		}
	}

	store := newMemStore()
	reg := prometheus.NewRegistry()
	projectionstest.Run(t, projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{b.Addr()}}, Topic: topic, Codec: codec, Store: store, Registerer: reg, LagInterval: 100 * time.Millisecond})
	count := func() int {
		n := 0
		for _, ids := range store.ids() {
			n += len(ids)
		}
		return n
	}
	testsvc.Eventually(t, 20*time.Second, "100 events applied", func() bool { return count() == 100 })

	// Live: one more event is applied promptly.
	if _, err := log.Append(ctx, joined(100)); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "live event applied", func() bool { return count() == 101 })

	// Checkpoints reach the end offsets, past the parked records.
	ends, err := kafka.EndOffsets(ctx, cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "checkpoints at end", func() bool {
		cps, _ := store.Checkpoints(ctx)
		for p, e := range ends {
			if cps[p] != e {
				return false
			}
		}
		return true
	})
	// Per-partition order is log order.
	for p, ids := range store.ids() {
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("partition %d: %s applied twice", p, id)
			}
			seen[id] = true
		}
	}
	if got := counterSum(t, reg, "rtstack_projection_records_parked_total"); got != 2 {
		t.Errorf("parked metric = %v, want 2", got)
	}
	if got := counterSum(t, reg, "rtstack_projection_records_applied_total"); got != 101 {
		t.Errorf("applied metric = %v, want 101", got)
	}
	// The lag gauges reach zero on every owned partition.
	testsvc.Eventually(t, 10*time.Second, "lag gauges at zero", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "rtstack_projection_lag_records" {
				if len(mf.GetMetric()) != 3 {
					return false
				}
				for _, m := range mf.GetMetric() {
					if m.GetGauge().GetValue() != 0 {
						return false
					}
				}
				return true
			}
		}
		return false
	})

	// Both bad records are in the parking topic with the reason and position.
	parked := readParked(ctx, t, b.Addr(), topic+".parked", 2)
	for i, r := range parked {
		h := headers(r)
		if h[projections.HeaderParkError] == "" || h[projections.HeaderParkOffset] == "" || h[projections.HeaderParkTopic] != topic {
			t.Errorf("parked record %d headers %v", i, h)
		}
		if string(r.Value) != string(bad[i].Value) {
			t.Errorf("parked record %d value %q, want %q", i, r.Value, bad[i].Value)
		}
	}

	// A rebuild reaches the same state while the projector keeps running.
	before, _ := store.Digest(ctx)
	var progressed int64
	err = projections.Rebuild(ctx, projections.RebuildConfig{
		Kafka: kafka.ClientConfig{Brokers: []string{b.Addr()}}, Topic: topic, Codec: codec, Target: store,
		Progress:   func(done, total int64) { progressed = done },
		Logger:     slog.New(slog.NewTextHandler(tWriter{t}, nil)),
		Registerer: reg,
	})
	t.Logf("rebuild done")
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := store.Digest(ctx); after != before {
		t.Errorf("digest after rebuild %s, before %s", after, before)
	}
	if progressed != 103 {
		t.Errorf("progress reported %d records, want 103 (101 events + 2 parked)", progressed)
	}
	// The operator's gauges tell the same story, and that it has ended.
	for name, want := range map[string]float64{"rtstack_rebuild_replayed_records": 103, "rtstack_rebuild_target_records": 103, "rtstack_rebuild_running": 0} {
		if got := counterSum(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if _, err := log.Append(ctx, joined(101)); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "live event applied after swap", func() bool { return count() == 102 })
}

func headers(r *kgo.Record) map[string]string {
	out := map[string]string{}
	for _, h := range r.Headers {
		out[h.Key] = string(h.Value)
	}
	return out
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() // one of them is set
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestProgressPlain(t *testing.T) {
	var buf syncBuffer
	p := projections.NewProgress(&buf, false)
	p.Update(10, 100)
	p.Finish()
	if got := buf.String(); !containsAll(got, "10/100 events", "events/s", "eta") {
		t.Errorf("plain progress output %q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestConfigValidate(t *testing.T) {
	store := newMemStore()
	tests := []struct {
		name string
		err  error
		want int // problems reported
	}{
		{"projector zero", projections.Config{}.Validate(), 3},
		{"projector ok", projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{"b"}}, Codec: kafkatest.Codec(t), Store: store}.Validate(), 0},
		{"projector negative", projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{"b"}}, Codec: kafkatest.Codec(t), Store: store, MaxBatch: -1, SessionTimeout: -1}.Validate(), 2},
		{"rebuild zero", projections.RebuildConfig{}.Validate(), 3},
		{"rebuild ok", projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{"b"}}, Codec: kafkatest.Codec(t), Target: store}.Validate(), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := 0
			if tc.err != nil {
				got = len(strings.Split(tc.err.Error(), "\n"))
			}
			if got != tc.want {
				t.Errorf("%d problems (%v), want %d", got, tc.err, tc.want)
			}
		})
	}
	if _, err := projections.NewProjector(projections.Config{}); err == nil {
		t.Error("NewProjector accepted an empty config")
	}
}

func TestProgressBarOnTerminal(t *testing.T) {
	var buf syncBuffer
	p := projections.NewProgress(&buf, true)
	p.Update(0, 1000)
	p.Update(1000, 1000)
	p.Finish()
	if got := buf.String(); !containsAll(got, "1000/1000", "events") {
		t.Errorf("bar output %q", got)
	}
}
