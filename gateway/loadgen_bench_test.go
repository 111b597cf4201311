package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/gateway/dedupe"
	"github.com/rtstack/rtstack/gateway/loadgen"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// The load benchmarks run the generator in a child process (this test
// binary again, told so by generatorEnv), so the server's CPU time and
// memory are measured alone in this process and the two sides do not share
// one file descriptor limit.
const generatorEnv = "RTSTACK_LOADGEN_CHILD"

// generatorSpec is what the parent tells the child generator.
type generatorSpec struct {
	URL     string        `json:"url"`
	Secret  string        `json:"secret,omitempty"` // signs the tokens; empty: none
	Clients int           `json:"clients"`
	Rooms   int           `json:"rooms"`
	Senders int           `json:"senders"`
	Rate    float64       `json:"rate,omitempty"`
	Window  int           `json:"window,omitempty"`
	Run     time.Duration `json:"duration"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(generatorEnv); spec != "" {
		os.Exit(runGeneratorChild(spec))
	}
	os.Exit(m.Run())
}

// runGeneratorChild runs the load and prints "ready" once every client
// joined, then the JSON report. An interrupt ends the window early.
func runGeneratorChild(specJSON string) int {
	var s generatorSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Fprintln(os.Stderr, "generator spec:", err)
		return 2
	}
	cfg := loadgen.Config{URL: s.URL, Clients: s.Clients, Rooms: s.Rooms, Senders: s.Senders,
		Rate: s.Rate, Window: s.Window, Duration: s.Run, Drain: 30 * time.Second,
		Ready: func() { fmt.Println("ready") }}
	if s.Secret != "" {
		keys, err := auth.NewKeys(s.Secret)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cfg.Token = func(user string) (string, error) { return keys.Sign(user, "", false, time.Hour) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	return 0
}

// driven is one generator run against one server, with the server's CPU
// time from ready to the generator's exit.
type driven struct {
	rep       *loadgen.Report
	serverCPU time.Duration
}

// drive runs the child generator against s.URL. onReady runs when every
// client joined; with interrupt, the child is then told to stop (idle
// connections are measured, not held for s.Run).
func drive(b *testing.B, s generatorSpec, onReady func(), interrupt bool) driven {
	b.Helper()
	specJSON, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), generatorEnv+"="+string(specJSON))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var (
		d      driven
		cpu0   time.Duration
		lines  = bufio.NewScanner(out)
		joined bool
	)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case line == "ready":
			joined = true
			cpu0 = testsvc.ProcessCPU(b)
			if onReady != nil {
				onReady()
			}
			if interrupt {
				_ = cmd.Process.Signal(os.Interrupt)
			}
		case strings.HasPrefix(line, "{"):
			d.rep = &loadgen.Report{}
			if err := json.Unmarshal([]byte(line), d.rep); err != nil {
				b.Fatalf("generator report: %v", err)
			}
		}
	}
	if err := cmd.Wait(); err != nil || d.rep == nil || !joined {
		b.Fatalf("generator: %v (joined %v)\n%s", err, joined, stderr.String())
	}
	d.serverCPU = testsvc.ProcessCPU(b) - cpu0
	return d
}

// loadProfile names a directory for a CPU profile of rtstack's side of each
// load benchmark, and heap profiles at 10,000 idle connections (go test
// -bench 'Load|Idle' ./gateway -args -loadprofile=DIR): -cpuprofile would
// mix in the raw baseline, which runs in the same process.
var loadProfile = flag.String("loadprofile", "", "write CPU and heap profiles of the load benchmarks to DIR")

// profileCPU starts a CPU profile of this process if -loadprofile is set.
func profileCPU(b *testing.B) (stop func()) {
	if *loadProfile == "" {
		return func() {}
	}
	return testsvc.CPUProfile(b, filepath.Join(*loadProfile, b.Name()+".rtstack.pprof"))
}

// benchGateway is rtstack's side of the load benchmarks: the gateway with
// the embedded broker over TCP and the Redis idempotency store, with no
// frame rate limits (RATE_LIMIT=0 USER_RATE_LIMIT=0). It returns the endpoint and the secret its tokens are signed with.
func benchGateway(b *testing.B, reg prometheus.Registerer) (url, secret string) {
	rdb, prefix := testsvc.Redis(b)
	o := stackOpts{outcomes: newTimedOutcomes(dedupe.New(rdb, prefix+"dedupe:", dedupe.DefaultTTL), reg)}
	if *loadNoFsync {
		br, err := kafka.StartBroker(kafka.BrokerConfig{Addr: "127.0.0.1:0", DataDir: b.TempDir(), NoFsync: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(br.Close)
		o.addr = br.Addr()
	}
	st := newStack(b, o)
	g := st.gateway(b, func(c *gateway.Config) {
		c.RateLimit, c.UserRateLimit = rate.Inf, rate.Inf
		c.Registerer = reg
	})
	return g.endpoint(), testSecret
}

// timedOutcomes is the dedupe store timing its claims and outcome writes
// (each call's round trip, shared ones included), for reportStages.
type timedOutcomes struct {
	*dedupe.Outcomes
	claim, put prometheus.Histogram
}

func newTimedOutcomes(o *dedupe.Outcomes, reg prometheus.Registerer) commands.Outcomes {
	if reg == nil {
		return o
	}
	h := func(name string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)})
	}
	t := &timedOutcomes{Outcomes: o, claim: h("bench_claim_seconds"), put: h("bench_put_seconds")}
	reg.MustRegister(t.claim, t.put)
	return t
}

func (t *timedOutcomes) ClaimAll(ctx context.Context, keys []string, ttl time.Duration) ([]commands.Claim, []error) {
	defer observeSince(t.claim, time.Now())
	return t.Outcomes.ClaimAll(ctx, keys, ttl)
}

// Claim is timed as well: a lone send claims through it, not ClaimAll.
func (t *timedOutcomes) Claim(ctx context.Context, key string, ttl time.Duration) (commands.Claim, error) {
	defer observeSince(t.claim, time.Now())
	return t.Outcomes.Claim(ctx, key, ttl)
}

func (t *timedOutcomes) Put(ctx context.Context, key string, pos events.Position) error {
	defer observeSince(t.put, time.Now())
	return t.Outcomes.Put(ctx, key, pos)
}

func observeSince(h prometheus.Histogram, start time.Time) { h.Observe(time.Since(start).Seconds()) }

// loadNoFsync runs rtstack's side on a broker that acknowledges before
// fsync: an attribution run (how much of the latency is the durable
// write), never the default, which syncs as production does.
var loadNoFsync = flag.Bool("loadnofsync", false, "run rtstack's side of the load benchmarks on a broker that does not fsync")

// reportStages reports where rtstack's time went, from the gateway's own
// histograms: a send's ack path (claim, append with the broker's fsync,
// outcome), the tail's lag (a record's producer timestamp to its batch
// queued to the subscribers: append, fetch, fanout), and the dedupe
// store's claims and outcome writes (timedOutcomes).
func reportStages(b *testing.B, reg *prometheus.Registry) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		var who string
		switch mf.GetName() {
		case "rtstack_gateway_append_seconds":
			who = "append"
		case "rtstack_gateway_fanout_seconds":
			who = "tail-lag"
		case "bench_claim_seconds":
			who = "claim"
		case "bench_put_seconds":
			who = "put"
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if who == "append" && !hasLabel(m, "op", "send") || h.GetSampleCount() == 0 {
				continue
			}
			b.ReportMetric(1000*h.GetSampleSum()/float64(h.GetSampleCount()), "rtstack-"+who+"-mean-ms")
			b.ReportMetric(1000*histQuantile(h, 0.99), "rtstack-"+who+"-p99-ms")
		}
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// histQuantile estimates the q quantile of a histogram as Prometheus's
// histogram_quantile does: linearly within the bucket it falls in.
func histQuantile(h *dto.Histogram, q float64) float64 {
	rank := q * float64(h.GetSampleCount())
	var lower float64
	var below uint64
	for _, bk := range h.GetBucket() {
		if float64(bk.GetCumulativeCount()) >= rank {
			in := bk.GetCumulativeCount() - below
			if in == 0 {
				return bk.GetUpperBound()
			}
			return lower + (bk.GetUpperBound()-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = bk.GetUpperBound(), bk.GetCumulativeCount()
	}
	return lower
}

// compareLoad runs the same load against the raw baseline and then rtstack
// and reports both and their ratios.
func compareLoad(b *testing.B, s generatorSpec) {
	raw := startRawBroadcast(b)
	s.URL = raw.url()
	base := drive(b, s, nil, false)
	raw.hs.Close()

	reg := prometheus.NewRegistry()
	s.URL, s.Secret = benchGateway(b, reg)
	stopProfile := profileCPU(b)
	ours := drive(b, s, nil, false)
	stopProfile()
	reportStages(b, reg)

	for _, d := range []struct {
		who string
		d   driven
	}{{"raw", base}, {"rtstack", ours}} {
		r := d.d.rep
		b.Logf("%s: %.0f deliveries/s, %.0f acks/s, delivery p99 %.2f ms, ack p99 %.2f ms, missing %d, server CPU %.2fs, generator CPU %.2fs (%.2f cores), errors %v, disconnects %v",
			d.who, r.DeliveredPerSec, r.AckedPerSec, r.DeliveryLatency.P99, r.AckLatency.P99, r.Missing,
			d.d.serverCPU.Seconds(), r.CPUSeconds, r.CPUCores, r.Errors, r.Disconnects)
		b.ReportMetric(r.DeliveredPerSec, d.who+"-deliv/s")
		b.ReportMetric(r.DeliveryLatency.P99, d.who+"-p99-ms")
		b.ReportMetric(d.d.serverCPU.Seconds(), d.who+"-server-cpu-s")
		if r.TotalDelivered > 0 {
			b.ReportMetric(float64(d.d.serverCPU.Microseconds())/float64(r.TotalDelivered), d.who+"-cpu-µs/deliv")
		}
		b.ReportMetric(r.CPUCores, d.who+"-generator-cores")
		b.ReportMetric(float64(r.Missing), d.who+"-missing")
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	b.ReportMetric(ratio(ours.rep.DeliveredPerSec, base.rep.DeliveredPerSec), "deliv-ratio")
	b.ReportMetric(ratio(ours.rep.DeliveryLatency.P99, base.rep.DeliveryLatency.P99), "p99-ratio")
	b.ReportMetric(ratio(ours.serverCPU.Seconds(), base.serverCPU.Seconds()), "cpu-ratio")
	b.ReportMetric(0, "ns/op") // the whole-run figures above are the result
}

const loadRun = 5 * time.Second

// testSecret is the key newStack signs and verifies tokens with.
const testSecret = "test-secret"

// BenchmarkLoadClosed10 is the first saturation workload: 100
// members in one room, 10 senders keeping 16 messages in flight each.
func BenchmarkLoadClosed10(b *testing.B) {
	compareLoad(b, generatorSpec{Clients: 100, Rooms: 1, Senders: 10, Window: 16, Run: loadRun})
}

// BenchmarkLoadClosed100: 100 members, every one a sender with 16 in
// flight.
func BenchmarkLoadClosed100(b *testing.B) {
	compareLoad(b, generatorSpec{Clients: 100, Rooms: 1, Senders: 100, Window: 16, Run: loadRun})
}

// BenchmarkLoadOpen1000: 1,000 members in one room, 200 messages/s from
// 10 senders (open loop): everything must arrive; p99 and server CPU are
// compared.
func BenchmarkLoadOpen1000(b *testing.B) {
	compareLoad(b, generatorSpec{Clients: 1000, Rooms: 1, Senders: 10, Rate: 200, Run: 2 * loadRun})
}

const idleConns = 10000

// BenchmarkIdleConnRSS measures the server's resident memory per idle
// connection at 10,000 connections joined to one of 100 rooms, for rtstack
// and the raw baseline. RSS is read after a GC that returns freed memory to
// the OS, so it counts what the connections hold.
func BenchmarkIdleConnRSS(b *testing.B) {
	// Each side (this process, the generator) holds one descriptor per
	// connection; Go raises the soft limit to the hard one at start.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < idleConns+1000 {
		b.Fatalf("open files limit %d (%v): %d idle connections need %d per process (ulimit -n)", lim.Cur, err, idleConns, idleConns+1000)
	}
	type perConn struct{ kib, goroutines float64 }
	measure := func(who, url, secret string) perConn {
		before, g0 := settledRSS(b), runtime.NumGoroutine()
		var after int64
		var g1 int
		drive(b, generatorSpec{URL: url, Secret: secret, Clients: idleConns, Rooms: 100, Run: time.Hour},
			func() {
				after, g1 = settledRSS(b), runtime.NumGoroutine()
				writeHeapProfile(b, who)
			}, true)
		return perConn{float64(after-before) / idleConns / 1024, float64(g1-g0) / idleConns}
	}
	raw := startRawBroadcast(b)
	base := measure("raw", raw.url(), "")
	raw.hs.Close()
	url, secret := benchGateway(b, nil)
	ours := measure("rtstack", url, secret)
	b.Logf("per idle connection: rtstack %.1f KiB RSS, %.1f goroutines; raw %.1f KiB, %.1f goroutines",
		ours.kib, ours.goroutines, base.kib, base.goroutines)
	b.ReportMetric(ours.kib, "rtstack-KiB/conn")
	b.ReportMetric(base.kib, "raw-KiB/conn")
	b.ReportMetric(ours.goroutines, "rtstack-goroutines/conn")
	b.ReportMetric(base.goroutines, "raw-goroutines/conn")
	b.ReportMetric(ours.kib/base.kib, "rss-ratio")
	b.ReportMetric(0, "ns/op")
}

// writeHeapProfile writes DIR/BenchmarkName.who.heap.pprof if -loadprofile
// is set.
func writeHeapProfile(b *testing.B, who string) {
	if *loadProfile == "" {
		return
	}
	f, err := os.Create(filepath.Join(*loadProfile, b.Name()+"."+who+".heap.pprof"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// settledRSS is this process's resident set after a collection that hands
// freed pages back.
func settledRSS(b *testing.B) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// BenchmarkSendPath measures the command path alone (no WebSocket): 100
// goroutines sending through commands.Handler for 3 s each way, with the
// Redis idempotency store and without it (the message id alone), to show
// what the store costs before any fanout.
func BenchmarkSendPath(b *testing.B) {
	const senders, run = 100, 3 * time.Second
	rate := func(o stackOpts) float64 {
		st := newStack(b, o)
		var sent atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(run)
		for g := range senders {
			wg.Go(func() {
				for i := 0; time.Now().Before(stop); i++ {
					if _, err := st.cmds.SendMessage(context.Background(), commands.SendMessage{
						Room: "path", User: fmt.Sprint("u", g), ClientID: strconv.Itoa(i), Text: "hello"}); err != nil {
						b.Error(err)
						return
					}
					sent.Add(1)
				}
			})
		}
		wg.Wait()
		return float64(sent.Load()) / run.Seconds()
	}
	bare := rate(stackOpts{})
	rdb, prefix := testsvc.Redis(b)
	stored := rate(stackOpts{outcomes: dedupe.New(rdb, prefix+"dedupe:", dedupe.DefaultTTL)})
	b.ReportMetric(stored, "with-store-sends/s")
	b.ReportMetric(bare, "without-store-sends/s")
	b.ReportMetric(stored/bare, "store-ratio")
	b.ReportMetric(0, "ns/op")
}
