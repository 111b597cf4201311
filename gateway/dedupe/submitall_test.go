package dedupe_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/dedupe"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// orderLog records the client id of each send appended, in append order,
// at offsets 101, 102, … of partition 2.
type orderLog struct {
	mu  sync.Mutex
	ids []string
}

func (l *orderLog) Append(_ context.Context, ev events.Event) (events.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, ev.(*events.MessageSent).ClientID)
	return events.Position{Partition: 2, Offset: int64(100 + len(l.ids))}, nil
}

func (l *orderLog) appended() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ids)
}

// submitAll submits sends of the given client ids in room r as user u and
// returns their results.
func submitAll(t *testing.T, h *commands.Handler, ids ...string) []commands.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subs := make([]commands.Submission, len(ids))
	for i, id := range ids {
		subs[i] = commands.Submission{Ctx: ctx, Action: commands.SendMessage{Room: "r", User: "u", ClientID: id, Text: "hi " + id}, Ready: func() {}}
	}
	var out []commands.Result
	for i, p := range h.SubmitAll(subs) {
		res, err := p.Result()
		if err != nil {
			t.Fatalf("send %s: %v", ids[i], err)
		}
		out = append(out, res)
	}
	return out
}

// A run of sends claims all its keys in one round trip, then appends in
// order; each outcome is stored as a send alone stores it.
func TestSubmitAllClaimsInOneRoundTrip(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	log := &orderLog{}
	h := handler(t, log, dedupe.New(rdb, prefix, time.Hour))
	submitAll(t, h, "warm") // loads the scripts and opens the connection
	rt := &dedupe.RoundTrips{}
	rdb.AddHook(rt)
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	res := submitAll(t, h, ids...)
	if got := rt.Sizes(); !slices.Equal(got, []int{8, 1, 1, 1, 1, 1, 1, 1, 1}) {
		t.Fatalf("commands per round trip %v, want the 8 claims in one, then each outcome", got)
	}
	if got := log.appended(); !slices.Equal(got, append([]string{"warm"}, ids...)) {
		t.Fatalf("appended %v, want warm then %v in order", got, ids)
	}
	for i, r := range res {
		if r.Duplicate || r.Position.Offset != int64(102+i) || r.MessageID != commands.MessageID("r", "u", ids[i]) {
			t.Fatalf("send %s = %+v, want offset %d", ids[i], r, 102+i)
		}
	}
	again := submitAll(t, h, "c", "a")
	if !again[0].Duplicate || again[0].Position != res[2].Position || !again[1].Duplicate || again[1].Position != res[0].Position {
		t.Fatalf("resends = %+v, want the first positions", again)
	}
}

// A client id twice in one run appends once: the second answers with the
// first's position.
func TestSubmitAllSameClientIDTwice(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	log := &orderLog{}
	h := handler(t, log, dedupe.New(rdb, prefix, time.Hour))
	res := submitAll(t, h, "x", "y", "x")
	if got := log.appended(); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("appended %v, want [x y]", got)
	}
	if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || res[2].Position != res[0].Position {
		t.Fatalf("results %+v, want x, y appended and the second x a duplicate of the first", res)
	}
}

// A send whose key another gateway holds waits for that append's outcome
// holding no later claim: the claims taken for the sends after it are
// released (another connection may be waiting on them), and those sends
// are claimed again and appended after it, in order.
func TestSubmitAllYieldsToAHeldClaim(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	o := dedupe.New(rdb, prefix, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The handler's key is room NUL user NUL client id.
	if c, err := o.Claim(ctx, "r\x00u\x00b", time.Minute); err != nil || c.Token == "" {
		t.Fatalf("the other gateway's claim = %+v, %v", c, err)
	}
	log := &orderLog{}
	h := handler(t, log, o)
	done := make(chan []commands.Result)
	go func() { done <- submitAll(t, h, "a", "b", "c") }()
	testsvc.Eventually(t, 5*time.Second, "a appended and c's claim released", func() bool {
		return slices.Equal(log.appended(), []string{"a"}) && rdb.Exists(ctx, prefix+"outcome:r\x00u\x00c").Val() == 0
	})
	other := events.Position{Partition: 2, Offset: 900}
	if err := o.Put(ctx, "r\x00u\x00b", other); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if got := log.appended(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("appended %v, want [a c]", got)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].Position != other || res[2].Duplicate || res[2].Position.Offset != 102 {
		t.Fatalf("results %+v, want a appended, b the other gateway's, c appended after a", res)
	}
}
