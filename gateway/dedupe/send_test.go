package dedupe_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/dedupe"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// countingLog stands in for the log: these tests are about the store, and
// what they need from the log is how many appends reached it. An append
// waits for gate (if set) so that duplicates arrive while it is under way.
type countingLog struct {
	mu   sync.Mutex
	n    int
	gate chan struct{}
}

func (l *countingLog) Append(ctx context.Context, _ events.Event) (events.Position, error) {
	if l.gate != nil {
		select {
		case <-l.gate:
		case <-ctx.Done():
			return events.Position{}, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return events.Position{Partition: 2, Offset: int64(100 + l.n)}, nil
}

func (l *countingLog) appends() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func handler(t *testing.T, log commands.Log, o commands.Outcomes) *commands.Handler {
	t.Helper()
	h, err := commands.NewHandler(commands.Config{Log: log, Outcomes: o})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Many sends of one client id at once, through two gateways (two stores
// on one Redis), append once: every other send waits for that append and
// answers with its message id and position.
func TestSameClientIDAtOnceAppendsOnce(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	log := &countingLog{gate: make(chan struct{})}
	gateways := []*commands.Handler{
		handler(t, log, dedupe.New(rdb, prefix, time.Hour)),
		handler(t, log, dedupe.New(rdb, prefix, time.Hour)),
	}
	const senders = 64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := make([]commands.Result, senders)
	errs := make([]error, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			results[i], errs[i] = gateways[i%2].SendMessage(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: "c1", Text: "hi"})
		})
	}
	// The claimer's append is held until every other send found the claim
	// (at least one Claim each: 64 claims of the key in Redis' stats
	// would need a hook per store; the claim being there is enough).
	testsvc.Eventually(t, 10*time.Second, "the claim to be taken", func() bool {
		return rdb.Exists(ctx, prefix+"outcome:r\x00u\x00c1").Val() == 1
	})
	close(log.gate)
	wg.Wait()
	if n := log.appends(); n != 1 {
		t.Fatalf("%d appends, want 1", n)
	}
	firsts := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("send %d: %v", i, errs[i])
		}
		if !r.Duplicate {
			firsts++
		}
		if r.MessageID != results[0].MessageID || r.Position != (events.Position{Partition: 2, Offset: 101}) {
			t.Fatalf("send %d answered %s@%v, send 0 %s; want one message at 2:101", i, r.MessageID, r.Position, results[0].MessageID)
		}
	}
	if firsts != 1 {
		t.Fatalf("%d sends answered as the first append, want 1", firsts)
	}
}

// A claim whose holder died before appending (never released, never
// replaced by an outcome) expires: a resend waiting on it then claims and
// appends, once.
func TestCrashedClaimExpires(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	o := dedupe.New(rdb, prefix, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The handler's key is room NUL user NUL client id.
	if c, err := o.Claim(ctx, "r\x00u\x00c1", 300*time.Millisecond); err != nil || c.Token == "" {
		t.Fatalf("the crashed gateway's claim = %+v, %v", c, err)
	}
	log := &countingLog{}
	h := handler(t, log, o)
	res, err := h.SendMessage(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: "c1", Text: "hi"})
	if err != nil || res.Duplicate || log.appends() != 1 {
		t.Fatalf("send after the claim expired = %+v, %v (%d appends); want one append", res, err, log.appends())
	}
	again, err := h.SendMessage(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: "c1", Text: "hi"})
	if err != nil || !again.Duplicate || again.Position != res.Position || log.appends() != 1 {
		t.Fatalf("resend = %+v, %v (%d appends); want the first position, no append", again, err, log.appends())
	}
}

// A send waiting on another's claim gives up with ErrAppend at its
// command's deadline, and appends nothing.
func TestWaitForAClaimIsBoundedByTheDeadline(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	o := dedupe.New(rdb, prefix, time.Hour)
	if c, err := o.Claim(context.Background(), "r\x00u\x00c1", time.Minute); err != nil || c.Token == "" {
		t.Fatalf("claim = %+v, %v", c, err)
	}
	log := &countingLog{}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := handler(t, log, o).SendMessage(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: "c1", Text: "hi"}); !errors.Is(err, commands.ErrAppend) || log.appends() != 0 {
		t.Fatalf("send = %v (%d appends); want ErrAppend, no append", err, log.appends())
	}
}

// Round trips per send: one to answer or claim, one to store the outcome
// (was three: GET, SET NX, the outcome's script); a resend is one. Alone,
// these are the most a send takes: concurrent sends share them
// (TestConcurrentCallsShareARoundTrip).
func TestRoundTripsPerSend(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	h := handler(t, &countingLog{}, dedupe.New(rdb, prefix, time.Hour))
	send := func(cid string) commands.Result {
		t.Helper()
		r, err := h.SendMessage(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: cid, Text: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	send("warm") // loads the scripts and opens the connection
	rt := &dedupe.RoundTrips{}
	rdb.AddHook(rt)
	for _, cid := range []string{"a", "b", "c"} {
		send(cid)
	}
	if got := rt.Sizes(); !slices.Equal(got, []int{1, 1, 1, 1, 1, 1}) {
		t.Fatalf("3 sends: commands per round trip %v, want 6 round trips of one command", got)
	}
	if r := send("b"); !r.Duplicate {
		t.Fatal("resend not answered as a duplicate")
	}
	if got := rt.Sizes(); !slices.Equal(got, []int{1}) {
		t.Fatalf("a resend: commands per round trip %v, want [1]", got)
	}
}
