package postgres_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
)

var (
	replayEvents  = flag.Int("replay.events", 1_000_000, "events BenchmarkReplayPostgres replays")
	replayProfile = flag.String("replay.profile", "", "file prefix: CPU and allocation profiles of the replay alone (PREFIX.cpu.pprof, PREFIX.allocs.pprof, PREFIX.allocs-before.pprof)")
)

// benchSend is the i-th event of the benchmark log: a chat message of ~100
// bytes in one of 1000 rooms.
func benchSend(i int) *events.MessageSent {
	room := "room-" + strconv.Itoa(i%1000)
	user := "user-" + strconv.Itoa(i%97)
	return &events.MessageSent{
		Envelope:  events.Envelope{ID: "ev-" + strconv.Itoa(i), Room: room, User: user, Time: 1_700_000_000_000 + int64(i)},
		MessageID: "m-" + strconv.Itoa(i),
		ClientID:  "c-" + strconv.Itoa(i),
		Text:      fmt.Sprintf("message %d: the quick brown fox jumps over the lazy dog", i),
	}
}

// BenchmarkReplayPostgres replays -replay.events messages from the embedded
// broker into a new version of the Postgres projection (projections.Rebuild:
// fetch, decode, fold, COPY, checkpoint, swap) and, in the same run, copies
// the same rows into an identical table with raw pgx CopyFrom: the
// baseline. Reported: events/s of each, their ratio (goal ≥ 0.5), and the
// process's peak RSS (VmHWM from /proc/self/status, broker included).
//
//	go test -run '^$' -bench ReplayPostgres -benchtime 1x ./projections/postgres/ [-args -replay.events 1000000]
func BenchmarkReplayPostgres(b *testing.B) {
	n := *replayEvents
	p, _ := open(b)
	br := kafkatest.Broker(b, "")
	kafkatest.Topic(b, br.Addr(), topic, 6)
	codec := kafkatest.Codec(b)
	cl := kafkatest.Client(b, br.Addr(), kgo.MaxBufferedRecords(100_000), kgo.ProducerLinger(5*time.Millisecond))
	ctx := context.Background()

	start := time.Now()
	errc := make(chan error, 1)
	for i := range n {
		rec, err := kafka.NewRecord(codec, topic, benchSend(i))
		if err != nil {
			b.Fatal(err)
		}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	b.Logf("produced %d events in %s", n, time.Since(start).Round(time.Millisecond))

	if _, err := p.Pool().Exec(ctx, `CREATE TABLE copy_baseline (
		room text NOT NULL, message_id text NOT NULL, "user" text NOT NULL, text text NOT NULL,
		ts bigint NOT NULL, "partition" int NOT NULL, "offset" bigint NOT NULL,
		edited boolean NOT NULL DEFAULT false, edited_ts bigint NOT NULL DEFAULT 0,
		deleted boolean NOT NULL DEFAULT false, deleted_ts bigint NOT NULL DEFAULT 0,
		mentions text[] NOT NULL DEFAULT '{}', PRIMARY KEY (room, message_id));
		CREATE INDEX ON copy_baseline (room, "offset")`); err != nil {
		b.Fatal(err)
	}
	cols := []string{"room", "message_id", "user", "text", "ts", "partition", "offset", "edited", "edited_ts", "deleted", "deleted_ts", "mentions"}

	// Peak RSS of the replay alone: release what producing used, reset the
	// high-water mark (Linux: "5" > /proc/self/clear_refs), read it after.
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	baseRSS := procStatus("VmRSS:")

	var replay, copying time.Duration
	var replayCPU, copyCPU cpuTimes
	var peak int64
	b.ResetTimer()
	for range b.N {
		stopProfile := startProfile(b, *replayProfile)
		c0 := cpuNow(ctx, b, p.Pool())
		t0 := time.Now()
		if err := projections.Rebuild(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{br.Addr()}}, Topic: topic, Codec: codec, Target: p, Logger: quiet()}); err != nil {
			b.Fatal(err)
		}
		replay += time.Since(t0)
		replayCPU = replayCPU.add(cpuNow(ctx, b, p.Pool()).sub(c0))
		peak = max(peak, procStatus("VmHWM:"))
		stopProfile()

		b.StopTimer()
		if _, err := p.Pool().Exec(ctx, "TRUNCATE copy_baseline"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c1 := cpuNow(ctx, b, p.Pool())
		t1 := time.Now()
		i := 0
		empty := []string{}
		_, err := p.Pool().CopyFrom(ctx, pgx.Identifier{"copy_baseline"}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			ev := benchSend(i)
			i++
			return []any{ev.Room, ev.MessageID, ev.User, ev.Text, ev.Time, int32(i % 6), int64(i), false, int64(0), false, int64(0), empty}, nil
		}))
		if err != nil {
			b.Fatal(err)
		}
		copying += time.Since(t1)
		copyCPU = copyCPU.add(cpuNow(ctx, b, p.Pool()).sub(c1))
	}
	b.StopTimer()
	if got := messageCount(b, p); got != n {
		b.Fatalf("replayed %d rows, want %d", got, n)
	}
	replayRate := float64(n*b.N) / replay.Seconds()
	copyRate := float64(n*b.N) / copying.Seconds()
	b.ReportMetric(replayRate, "events/s")
	b.ReportMetric(copyRate, "copyfrom-rows/s")
	b.ReportMetric(replayRate/copyRate, "ratio")
	b.ReportMetric(replayCPU.self/float64(b.N), "replay-cpu-s")
	b.ReportMetric(replayCPU.pg/float64(b.N), "replay-pg-cpu-s")
	b.ReportMetric(copyCPU.self/float64(b.N), "copyfrom-cpu-s")
	b.ReportMetric(copyCPU.pg/float64(b.N), "copyfrom-pg-cpu-s")
	b.ReportMetric(float64(peak)/(1<<20), "replay-peak-RSS-MiB")
	b.ReportMetric(float64(baseRSS)/(1<<20), "RSS-before-MiB")
	b.ReportMetric(0, "ns/op") // the whole-run figures above are the result
}

// startProfile starts a CPU profile into prefix.cpu.pprof and writes the
// allocations so far to prefix.allocs-before.pprof; the returned func stops
// it and writes prefix.allocs.pprof, so
// `go tool pprof -diff_base PREFIX.allocs-before.pprof PREFIX.allocs.pprof`
// shows what the replay alone allocated. An empty prefix profiles nothing.
func startProfile(b *testing.B, prefix string) (stop func()) {
	b.Helper()
	if prefix == "" {
		return func() {}
	}
	writeAllocs := func(path string) {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	writeAllocs(prefix + ".allocs-before.pprof")
	stopCPU := testsvc.CPUProfile(b, prefix+".cpu.pprof")
	return func() {
		stopCPU()
		writeAllocs(prefix + ".allocs.pprof")
	}
}

// cpuTimes are CPU-seconds (user + system) spent by this process (the
// replay's Go side, the in-process broker included) and by the Postgres
// backends of this database. On a shared machine they move much less than
// rates do. Parallel index-build workers exit before they can be read, so
// the Postgres figure leaves out most of the history index's build.
type cpuTimes struct{ self, pg float64 }

func (c cpuTimes) add(d cpuTimes) cpuTimes { return cpuTimes{c.self + d.self, c.pg + d.pg} }

// sub is c − d (a backend that started after d counts from zero).
func (c cpuTimes) sub(d cpuTimes) cpuTimes { return cpuTimes{c.self - d.self, c.pg - d.pg} }

// cpuNow reads both; where /proc or getrusage is missing a part is 0.
func cpuNow(ctx context.Context, b *testing.B, pool *pgxpool.Pool) cpuTimes {
	b.Helper()
	var c cpuTimes
	c.self = testsvc.ProcessCPU(b).Seconds()
	rows, err := pool.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		c.pg += procCPU(pid)
	}
	return c
}

// procCPU returns the CPU-seconds of process pid, 0 if unreadable.
func procCPU(pid int32) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces:
	// utime and stime are the 12th and 13th, in clock ticks (100 a second
	// on Linux).
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

// procStatus returns a size field of /proc/self/status (VmHWM: peak resident
// set, VmRSS: current) in bytes, or 0 where /proc is missing.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
