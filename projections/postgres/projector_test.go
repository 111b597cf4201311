package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/postgres"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/schemas"
)

const topic = kafka.DefaultTopic

type logEnv struct {
	addr  string
	cl    *kgo.Client
	codec *schemas.Codec
}

func logBroker(t *testing.T, partitions int32) logEnv {
	t.Helper()
	l := kafkatest.NewLog(t, topic, partitions, kgo.MaxBufferedRecords(200_000))
	return logEnv{addr: l.Addr, cl: l.Client, codec: l.Codec}
}

func (e logEnv) ends(t testing.TB) map[int32]int64 {
	t.Helper()
	return (&kafkatest.Log{Topic: topic, Client: e.cl}).Ends(t)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runProjector runs a projector over store until the test ends.
func runProjector(t *testing.T, e logEnv, store projections.Store, mut ...func(*projections.Config)) {
	t.Helper()
	cfg := projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{e.addr}}, Topic: topic, Codec: e.codec, Store: store, LagInterval: 200 * time.Millisecond, Logger: quiet()}
	for _, m := range mut {
		m(&cfg)
	}
	projectionstest.Run(t, cfg)
}

func rebuild(ctx context.Context, e logEnv, p *postgres.Projection) error {
	return projections.Rebuild(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{e.addr}}, Topic: topic, Codec: e.codec, Target: p, Logger: quiet()})
}

func messageCount(t testing.TB, p *postgres.Projection) int {
	t.Helper()
	ctx := context.Background()
	v, err := p.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := p.Pool().QueryRow(ctx, "SELECT count(*) FROM "+v+".messages").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// firstSends returns, per partition, the sorted offsets of the sends that
// create a row (the first of each (room, message_id)).
func firstSends(evs []events.Event, pos []events.Position) map[int32][]int64 {
	type key struct{ room, id string }
	first := map[key]events.Position{}
	for i, ev := range evs {
		if s, ok := ev.(*events.MessageSent); ok {
			k := key{s.Room, s.MessageID}
			if f, ok := first[k]; !ok || pos[i].Offset < f.Offset {
				first[k] = pos[i]
			}
		}
	}
	out := map[int32][]int64{}
	for _, p := range first {
		out[p.Partition] = append(out[p.Partition], p.Offset)
	}
	for _, offs := range out {
		slices.Sort(offs)
	}
	return out
}

func TestLiveProjectionCheckpointIsAtomicWithRows(t *testing.T) {
	e := logBroker(t, 3)
	p, _ := open(t)
	g := newGen(1, 12)
	var evs []events.Event
	for range 4000 {
		evs = append(evs, g.Next())
	}
	runProjector(t, e, p, func(c *projections.Config) { c.MaxBatch = 97 }) // many small transactions
	pos := produce(t, e.cl, e.codec, topic, evs)
	want := firstSends(evs, pos)

	// While it projects, every snapshot shows rows exactly up to the
	// checkpoint: none beyond it, none missing below it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends := e.ends(t)
	snapshots := 0
	for !caughtUp(ctx, p, ends) {
		if ctx.Err() != nil {
			t.Fatal("projection did not catch up")
		}
		err := pgx.BeginTxFunc(ctx, p.Pool(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var v string
			if err := tx.QueryRow(ctx, "SELECT version FROM rtstack_control.active WHERE projection = 'postgres'").Scan(&v); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT c."partition", c.next_offset,
					(SELECT count(*) FROM `+v+`.messages m WHERE m."partition" = c."partition" AND m."offset" < c.next_offset),
					(SELECT count(*) FROM `+v+`.messages m WHERE m."partition" = c."partition" AND m."offset" >= c.next_offset)
				FROM `+v+`.checkpoints c`)
			if err != nil {
				return err
			}
			var part int32
			var cp, below, beyond int64
			_, err = pgx.ForEachRow(rows, []any{&part, &cp, &below, &beyond}, func() error {
				exp, _ := slices.BinarySearch(want[part], cp)
				if beyond != 0 || below != int64(exp) {
					t.Errorf("partition %d at checkpoint %d: %d rows below (want %d), %d beyond", part, cp, below, exp, beyond)
				}
				return nil
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		snapshots++
	}
	if got := messageCount(t, p); got != g.UniqueSends() {
		t.Errorf("%d message rows, want %d distinct sends", got, g.UniqueSends())
	}
	t.Logf("%d consistent snapshots while projecting", snapshots)

	// Live: a new event is queryable shortly after its ack.
	log := kafka.NewLog(e.cl, e.codec, topic)
	start := time.Now()
	if _, err := log.Append(ctx, sent(1, "live-room", "alice", "live-1", "now")); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "live message visible", func() bool {
		h, err := p.History(ctx, "live-room", 10, "")
		return err == nil && len(h) == 1 && h[0].Text == "now"
	})
	t.Logf("append to visible: %s", time.Since(start).Round(time.Millisecond))
}

func TestRebuildWhileLiveIsDeterministicAndKeepsServing(t *testing.T) {
	e := logBroker(t, 4)
	p, _ := open(t)
	g := newGen(2, 16)
	var evs []events.Event
	for range 20000 {
		evs = append(evs, g.Next())
	}
	runProjector(t, e, p)
	produce(t, e.cl, e.codec, topic, evs)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	testsvc.Eventually(t, 60*time.Second, "caught up", func() bool { return caughtUp(ctx, p, e.ends(t)) })
	live, err := p.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := p.Active(ctx)

	// Readers hammer the read side during both rebuilds.
	var reads, readErrs atomic.Int64
	stopReads := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopReads:
					return
				default:
				}
				room := fmt.Sprintf("room-%d", (i+r)%16)
				var err error
				switch i % 3 {
				case 0:
					_, err = p.History(ctx, room, 50, "")
				case 1:
					_, _, err = p.Author(ctx, room, "m-1")
				default:
					_, err = p.Members(ctx, room)
				}
				reads.Add(1)
				if err != nil {
					readErrs.Add(1)
					t.Errorf("read during rebuild: %v", err)
				}
			}
		}()
	}
	defer func() { close(stopReads); wg.Wait() }()

	// 1. Quiet log: the rebuilt state equals the live state.
	if err := rebuild(ctx, e, p); err != nil {
		t.Fatal(err)
	}
	after, _ := p.Active(ctx)
	if after == before {
		t.Fatalf("active version still %s after rebuild", before)
	}
	if d, _ := p.Digest(ctx); d != live {
		t.Fatalf("rebuilt digest %s != live digest %s", d, live)
	}
	if vs, _ := p.Versions(ctx); len(vs) != 1 {
		t.Errorf("versions after swap: %v, want only the active one", vs)
	}

	// 2. Traffic during the rebuild: nothing lost across the swap.
	var more []events.Event
	for range 6000 {
		more = append(more, g.Next())
	}
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := 0; i < len(more); i += 500 {
			produce(t, e.cl, e.codec, topic, more[i:i+500])
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if err := rebuild(ctx, e, p); err != nil {
		t.Fatal(err)
	}
	<-appended
	testsvc.Eventually(t, 60*time.Second, "caught up after swap", func() bool { return caughtUp(ctx, p, e.ends(t)) })
	if got := messageCount(t, p); got != g.UniqueSends() {
		t.Errorf("%d message rows after swap under traffic, want %d", got, g.UniqueSends())
	}
	liveAfter, _ := p.Digest(ctx)
	if err := rebuild(ctx, e, p); err != nil {
		t.Fatal(err)
	}
	if d, _ := p.Digest(ctx); d != liveAfter {
		t.Errorf("clean rebuild digest %s != live digest %s after a swap under traffic", d, liveAfter)
	}
	if reads.Load() == 0 || readErrs.Load() != 0 {
		t.Errorf("%d reads during rebuilds, %d errors", reads.Load(), readErrs.Load())
	}
	t.Logf("%d reads during three rebuilds", reads.Load())
}

func TestSchemaChangeMessageSentV2(t *testing.T) {
	e := logBroker(t, 2)
	p, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i := range 20 {
		ev := sent(i, "r", "alice", fmt.Sprint("m", i), fmt.Sprintf("hi @bob %d", i))
		ev.Mentions = []string{"bob"}
		version := 1 + i%2 // as an old binary (v1) and a new one (v2) would write
		value, err := e.codec.EncodeVersion(ev, version)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("r"), Value: value,
			Headers: []kgo.RecordHeader{{Key: kafka.HeaderEventType, Value: []byte(ev.Type())}, {Key: kafka.HeaderEventID, Value: []byte(ev.ID)}}})
	}
	if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	runProjector(t, e, p)
	testsvc.Eventually(t, 30*time.Second, "caught up", func() bool { return caughtUp(ctx, p, e.ends(t)) })
	hist, err := p.History(ctx, "r", 100, "")
	if err != nil || len(hist) != 20 {
		t.Fatalf("history: %d messages, %v", len(hist), err)
	}
	for i, m := range hist {
		if i%2 == 0 && m.Mentions != nil {
			t.Errorf("v1 message %s has mentions %v, want none", m.MessageID, m.Mentions)
		}
		if i%2 == 1 && !slices.Equal(m.Mentions, []string{"bob"}) {
			t.Errorf("v2 message %s has mentions %v, want [bob]", m.MessageID, m.Mentions)
		}
	}
	live, _ := p.Digest(ctx)
	if err := rebuild(ctx, e, p); err != nil {
		t.Fatal(err)
	}
	if d, _ := p.Digest(ctx); d != live {
		t.Errorf("digest after rebuild %s, live %s", d, live)
	}
}

func TestDatabaseGoesAwayAndComesBack(t *testing.T) {
	e := logBroker(t, 3)
	direct, url := open(t)
	px := testsvc.Proxy(t, "127.0.0.1:5432")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	viaProxy, err := postgres.Open(ctx, postgres.Config{URL: strings.Replace(url, "127.0.0.1:5432", px.Addr(), 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	reg := prometheus.NewRegistry()
	runProjector(t, e, viaProxy, func(c *projections.Config) { c.Registerer = reg })

	g := newGen(3, 8)
	batch := func(n int) []events.Event {
		var out []events.Event
		for range n {
			out = append(out, g.Next())
		}
		return out
	}
	produce(t, e.cl, e.codec, topic, batch(1000))
	testsvc.Eventually(t, 30*time.Second, "caught up before the cut", func() bool { return caughtUp(ctx, direct, e.ends(t)) })

	px.Cut()
	produce(t, e.cl, e.codec, topic, batch(1000))
	errorsSeen := func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "rtstack_projection_apply_errors_total" {
				return mf.GetMetric()[0].GetCounter().GetValue() > 0
			}
		}
		return false
	}
	testsvc.Eventually(t, 30*time.Second, "apply errors while the database is away", errorsSeen)
	if caughtUp(ctx, direct, e.ends(t)) {
		t.Fatal("caught up while the database was unreachable")
	}
	px.Restore()
	testsvc.Eventually(t, 60*time.Second, "caught up after the database came back", func() bool { return caughtUp(ctx, direct, e.ends(t)) })
	if got := messageCount(t, direct); got != g.UniqueSends() {
		t.Errorf("%d message rows, want %d", got, g.UniqueSends())
	}
	live, _ := direct.Digest(ctx)
	if err := rebuild(ctx, e, direct); err != nil {
		t.Fatal(err)
	}
	if d, _ := direct.Digest(ctx); d != live {
		t.Errorf("digest after the outage %s != clean rebuild %s", live, d)
	}
}

func TestUndecodableRecordsAreParkedNotStalling(t *testing.T) {
	e := logBroker(t, 1)
	p, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := kafka.NewLog(e.cl, e.codec, topic)
	appendSent := func(i int) {
		t.Helper()
		if _, err := log.Append(ctx, sent(i, "r", "alice", fmt.Sprint("m", i), "hi")); err != nil {
			t.Fatal(err)
		}
	}
	appendSent(0)
	bad := []*kgo.Record{
		{Topic: topic, Key: []byte("r"), Value: []byte{0xde, 0xad, 0xbe, 0xef}},           // not the wire format
		{Topic: topic, Key: []byte("r"), Value: []byte{0, 0, 0, 0x03, 0xe7, 2, 'h', 'i'}}, // schema id 999
	}
	if err := e.cl.ProduceSync(ctx, bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	appendSent(1)
	runProjector(t, e, p)
	testsvc.Eventually(t, 30*time.Second, "caught up past the bad records", func() bool { return caughtUp(ctx, p, e.ends(t)) })
	appendSent(2) // and it keeps going
	testsvc.Eventually(t, 30*time.Second, "live after parking", func() bool { return caughtUp(ctx, p, e.ends(t)) })
	if got := messageCount(t, p); got != 3 {
		t.Errorf("%d messages applied around the bad records, want 3", got)
	}

	pc := kafkatest.Client(t, e.addr, kgo.ConsumeTopics(topic+".parked"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var parked []*kgo.Record
	for len(parked) < 2 {
		fs := pc.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		parked = append(parked, fs.Records()...)
	}
	for i, r := range parked {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h[projections.HeaderParkError] == "" || h[projections.HeaderParkOffset] != fmt.Sprint(i+1) || h[projections.HeaderParkPartition] != "0" {
			t.Errorf("parked record %d: headers %v", i, h)
		}
		if string(r.Value) != string(bad[i].Value) {
			t.Errorf("parked record %d value %x, want %x", i, r.Value, bad[i].Value)
		}
		if want := []string{"malformed", "unknown schema id"}[i]; !strings.Contains(h[projections.HeaderParkError], want) {
			t.Errorf("parked record %d error %q, want %q in it", i, h[projections.HeaderParkError], want)
		}
	}
}
