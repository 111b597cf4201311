package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/postgres"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/schemas"
)

// Environment of the helper process (the test binary re-executed).
const (
	helperEnv     = "RTSTACK_TEST_HELPER_PROJECTOR"
	helperURL     = "RTSTACK_TEST_POSTGRES_URL"
	helperBrokers = "RTSTACK_TEST_BROKERS"
	helperGroup   = "RTSTACK_TEST_GROUP"
)

// TestHelperProjector is not a test: it is the projector process that the
// crash tests start and kill -9.
func TestHelperProjector(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for the crash tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	p, err := postgres.Open(ctx, postgres.Config{URL: os.Getenv(helperURL)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	reg, err := schemas.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := projections.NewProjector(projections.Config{
		Kafka: kafka.ClientConfig{Brokers: []string{os.Getenv(helperBrokers)}}, Topic: topic, Group: os.Getenv(helperGroup),
		Codec: schemas.NewCodec(reg), Store: p, SessionTimeout: 6 * time.Second,
		Logger: helperLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// startHelper starts a projector process; its output goes to a file in the
// test's temp dir.
func startHelper(t *testing.T, url, brokers, group string) *exec.Cmd {
	t.Helper()
	return projectionstest.StartProcess(t, "TestHelperProjector", helperEnv+"=1", helperURL+"="+url, helperBrokers+"="+brokers, helperGroup+"="+group)
}

func kill9(t *testing.T, cmd *exec.Cmd) { t.Helper(); projectionstest.Kill9(t, cmd) }

func applied(ctx context.Context, p *postgres.Projection) int64 {
	cps, err := p.Checkpoints(ctx)
	if err != nil {
		return -1
	}
	var n int64
	for _, o := range cps {
		n += o
	}
	return n
}

func TestTwoInstancesShareAndTakeOver(t *testing.T) {
	e := logBroker(t, 6)
	p, url := open(t)
	g := newGen(5, 60)
	batch := func(n int) []events.Event {
		var out []events.Event
		for range n {
			out = append(out, g.Next())
		}
		return out
	}
	produce(t, e.cl, e.codec, topic, batch(5000))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const group = "two-instances"
	a := startHelper(t, url, e.addr, group)
	startHelper(t, url, e.addr, group)

	adm := kadm.NewClient(kafkatest.Client(t, e.addr))
	owners := func() int {
		dg, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return 0
		}
		n := 0
		for _, m := range dg[group].Members {
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range c.Topics {
					if len(tp.Partitions) > 0 {
						n++
						break
					}
				}
			}
		}
		return n
	}
	testsvc.Eventually(t, 60*time.Second, "both instances own partitions", func() bool { return owners() == 2 })
	produce(t, e.cl, e.codec, topic, batch(3000))
	testsvc.Eventually(t, 60*time.Second, "shared catch-up", func() bool { return caughtUp(ctx, p, e.ends(t)) })

	// Kill one mid-traffic; the other takes its partitions after the
	// session timeout and resumes from their checkpoints.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			produce(t, e.cl, e.codec, topic, batch(300))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	kill9(t, a)
	<-done
	testsvc.Eventually(t, 90*time.Second, "survivor catches up on every partition", func() bool { return caughtUp(ctx, p, e.ends(t)) })

	if got := messageCount(t, p); got != g.UniqueSends() {
		t.Errorf("%d message rows, want %d", got, g.UniqueSends())
	}
	live, _ := p.Digest(ctx)
	if err := rebuild(ctx, e, p); err != nil {
		t.Fatal(err)
	}
	if clean, _ := p.Digest(ctx); clean != live {
		t.Errorf("digest after takeover %s != clean rebuild %s", live, clean)
	}
}

// helperLogger logs to stderr (the helper's log file) when
// RTSTACK_TEST_HELPER_LOG is true.
func helperLogger() *slog.Logger {
	if v, _ := strconv.ParseBool(os.Getenv("RTSTACK_TEST_HELPER_LOG")); v {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return quiet()
}

// TestCrashDuringLiveTrafficLosesAndDoublesNothing kills the projector
// while it applies a live stream (small batches, each appended while the
// previous is being projected), restarts it, and repeats: the result equals
// a clean rebuild and holds every message once.
func TestCrashDuringLiveTrafficLosesAndDoublesNothing(t *testing.T) {
	e := logBroker(t, 6)
	p, url := open(t)
	g := newGen(7, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))

	const rounds, chunks, chunkSize = 5, 40, 10
	first := make([]events.Event, chunkSize) // so the first catch-up waits for a running projector
	for j := range first {
		first[j] = g.Next()
	}
	produce(t, e.cl, e.codec, topic, first)
	for round := range rounds {
		cmd := startHelper(t, url, e.addr, fmt.Sprint("live-", round))
		// Catch up with what arrived while it was dead, so the kill below
		// lands in live projection, not in a replay.
		ends := e.ends(t)
		testsvc.Eventually(t, 60*time.Second, "catch-up", func() bool { return caughtUp(ctx, p, ends) })
		killAt := 5 + rng.IntN(chunks-5)
		for i := range chunks {
			evs := make([]events.Event, chunkSize)
			for j := range evs {
				evs[j] = g.Next()
			}
			produce(t, e.cl, e.codec, topic, evs)
			if i == killAt {
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond) // inside an Apply, often
				kill9(t, cmd)
				t.Logf("round %d: killed at %d applied records", round, applied(ctx, p))
			}
			time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
		}
	}
	ends := e.ends(t)
	cmd := startHelper(t, url, e.addr, "live-final")
	testsvc.Eventually(t, 90*time.Second, "final catch-up", func() bool { return caughtUp(ctx, p, ends) })
	kill9(t, cmd)

	if got := messageCount(t, p); got != g.UniqueSends() {
		t.Errorf("%d message rows, want %d", got, g.UniqueSends())
	}
	crashed, err := p.Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rebuild(ctx, e, p); err != nil {
		t.Fatal(err)
	}
	if clean, _ := p.Digest(ctx); clean != crashed {
		t.Errorf("digest after %d kill -9s during live traffic %s != clean rebuild %s", rounds, crashed, clean)
	}
}
