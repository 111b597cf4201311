package projectionstest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/view"
)

// Harness is what the contract suite needs of a rebuildable store.
type Harness struct {
	// Open returns a store on a fresh, isolated place (its own database or
	// key prefix), closed when the test ends, and the place's name.
	Open func(t testing.TB) (projections.Versioned, string)
	// OpenAt opens the store at an existing place, as a restarted process
	// does; the crash scenario calls it in the child process it kills.
	OpenAt func(t testing.TB, place string) projections.Versioned
	// Messages is the number of messages the active version shows in room.
	Messages func(t *testing.T, s projections.Versioned, room string) int
	// Verify, if set, checks the store's state against the log evs with the
	// store's own reads (every event applied exactly once).
	Verify func(t *testing.T, s projections.Versioned, evs []events.Event)
	// Lose, if set, makes the store lose its data as a server without
	// persistence does when it restarts; nil where a loss cannot be
	// detected.
	Lose func(t *testing.T, s projections.Versioned)
}

// Contract runs every scenario a rebuildable store must pass, as one
// subtest each; call it from one test function of the store's package
// (the crash scenario re-runs that test function as its child process).
func Contract(t *testing.T, h Harness) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(t, h, spec)
		return
	}
	testsvc.Integration(t)
	t.Run("RetriedBatchAppliesOnce", func(t *testing.T) { retriedBatchAppliesOnce(t, h) })
	t.Run("PromoteRefusesWhileBehind", func(t *testing.T) { promoteRefusesWhileBehind(t, h) })
	t.Run("RecreatedLogIsRefusedUntilRebuilt", func(t *testing.T) { recreatedLogIsRefusedUntilRebuilt(t, h) })
	t.Run("AnotherLogIsRefused", func(t *testing.T) { anotherLogIsRefused(t, h) })
	t.Run("TruncatedLogIsRefusedThenRebuilt", func(t *testing.T) { truncatedLogIsRefusedThenRebuilt(t, h) })
	t.Run("Kill9LosesAndDoublesNothing", func(t *testing.T) { kill9LosesAndDoublesNothing(t, h) })
	if h.Lose != nil {
		t.Run("DataLossIsRecovered", func(t *testing.T) { dataLossIsRecovered(t, h) })
	}
	t.Run("AsOfEqualsRebuildOfCutLog", func(t *testing.T) { asOfEqualsRebuildOfCutLog(t, h) })
}

const topic = kafka.DefaultTopic

func digest(t testing.TB, s projections.Versioned) string {
	t.Helper()
	d, err := s.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func checkpoints(t testing.TB, s projections.Store) map[int32]int64 {
	t.Helper()
	cps, err := s.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cps
}

func apply(t testing.TB, s projections.Store, part int32, recs []events.Record, next int64) {
	t.Helper()
	if err := s.Apply(context.Background(), part, recs, next); err != nil {
		t.Fatalf("apply partition %d up to %d: %v", part, next, err)
	}
}

// onPartition numbers evs as the records of part from offset from.
func onPartition(part int32, from int64, evs ...events.Event) []events.Record {
	out := make([]events.Record, len(evs))
	for i, ev := range evs {
		out[i] = events.Record{Position: events.Position{Partition: part, Offset: from + int64(i)}, Event: ev}
	}
	return out
}

func chat(n int, room, user string) events.Envelope {
	return events.Envelope{ID: fmt.Sprintf("c-%s-%d", room, n), Room: room, User: user, Time: 1_700_000_000_000 + int64(n)*1000}
}

// retriedBatchAppliesOnce: a batch applied again (its outcome was unknown),
// or overlapping the checkpoint, changes nothing below the checkpoint, and
// the checkpoint never moves back.
func retriedBatchAppliesOnce(t *testing.T, h Harness) {
	s, _ := h.Open(t)
	recs := onPartition(0, 0,
		&events.MessageSent{Envelope: chat(0, "a", "ann"), MessageID: "m1", Text: "one"},
		&events.MemberJoined{Envelope: chat(1, "a", "ann")},
		&events.ReactionAdded{Envelope: chat(2, "a", "bob"), MessageID: "m1", Emoji: "+1"},
		&events.ReactionRemoved{Envelope: chat(3, "a", "bob"), MessageID: "m1", Emoji: "+1"},
		&events.ReactionAdded{Envelope: chat(4, "a", "cat"), MessageID: "m1", Emoji: "+1"},
		&events.MessageSent{Envelope: chat(5, "a", "bob"), MessageID: "m2", Text: "two"},
	)
	apply(t, s, 0, recs, 6)
	first := digest(t, s)
	apply(t, s, 0, recs, 6)
	apply(t, s, 0, recs[3:], 6)
	if got := digest(t, s); got != first {
		t.Errorf("digest changed by a retried batch: %s → %s", first, got)
	}
	if n := h.Messages(t, s, "a"); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	apply(t, s, 0, nil, 3)
	if cps := checkpoints(t, s); cps[0] != 6 {
		t.Errorf("checkpoint moved back to %d", cps[0])
	}
	more := append(recs[4:], onPartition(0, 6, &events.MessageSent{Envelope: chat(6, "a", "dan"), MessageID: "m3", Text: "three"})...)
	apply(t, s, 0, more, 7)
	if cps := checkpoints(t, s); cps[0] != 7 {
		t.Errorf("checkpoint %d, want 7", cps[0])
	}
	if n := h.Messages(t, s, "a"); n != 3 {
		t.Errorf("%d messages after a new one, want 3 (offsets 4, 5 once, 6 new)", n)
	}
}

// promoteRefusesWhileBehind: a version behind the active one on any
// partition is not promoted and leaves the active version untouched; once
// caught up it is promoted and equals the active one (the same pure
// function of the log). An abandoned version leaves no trace.
func promoteRefusesWhileBehind(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	evs := NewTraffic(3, 4).Events(40)
	p0, p1 := onPartition(0, 0, evs[:25]...), onPartition(1, 0, evs[25:]...)
	apply(t, s, 0, p0, 25)
	apply(t, s, 1, p1, 15)
	live := digest(t, s)

	v, name, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, v, 0, p0, 25)
	apply(t, v, 1, p1[:10], 10)
	if ok, err := s.Promote(ctx, name); err != nil || ok {
		t.Fatalf("promote while behind on partition 1: ok=%v err=%v, want refused", ok, err)
	}
	if got := digest(t, s); got != live {
		t.Errorf("a refused promote changed the active version: %s → %s", live, got)
	}
	apply(t, v, 1, p1[10:], 15)
	if ok, err := s.Promote(ctx, name); err != nil || !ok {
		t.Fatalf("promote once caught up: ok=%v err=%v", ok, err)
	}
	if got := digest(t, s); got != live {
		t.Errorf("the promoted version differs from the live one it replaced: %s vs %s", got, live)
	}

	v, name, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, v, 0, p0[:5], 5)
	if err := s.Abandon(ctx, name); err != nil {
		t.Fatal(err)
	}
	if got := digest(t, s); got != live {
		t.Errorf("abandoning a version changed the active one: %s → %s", live, got)
	}
	if ok, err := s.Promote(ctx, name); err == nil && ok {
		t.Error("an abandoned version was promoted")
	}
}

// run starts a projector of s over l in this process; stop ends it and
// returns what Run returned.
func run(ctx context.Context, t testing.TB, l *kafkatest.Log, s projections.Store, group string) (stop func() error) {
	t.Helper()
	pr, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: l.Topic, Group: group, Codec: l.Codec, Store: s,
		SessionTimeout: 6 * time.Second, LagInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pr.Run(rctx) }()
	return func() error { cancel(); return <-done }
}

func caughtUp(s projections.Store, ends map[int32]int64) bool {
	cps, err := s.Checkpoints(context.Background())
	if err != nil {
		return false
	}
	for p, e := range ends {
		if cps[p] < e {
			return false
		}
	}
	return true
}

func rebuild(ctx context.Context, l *kafkatest.Log, s projections.Versioned) error {
	return projections.Rebuild(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: l.Topic, Codec: l.Codec, Target: s})
}

// asOfEqualsRebuildOfCutLog: a version as of a point of the log (by
// positions, and by event time) equals a whole rebuild of a log that ends
// at that point; it stays beside the active one without changing it, is
// listed with its cut, is never promoted, and is gone once dropped.
func asOfEqualsRebuildOfCutLog(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := NewTraffic(17, 6)
	first := g.Events(600)
	cutTime := first[len(first)-1].Env().Time
	var rest []events.Event
	for len(rest) < 400 {
		ev := g.Next()
		if len(rest) == 0 && ev.Env().Time <= cutTime {
			first = append(first, ev) // same instant as the cut: before it
			continue
		}
		rest = append(rest, ev)
	}
	full := kafkatest.NewLog(t, topic, 3)
	full.Produce(t, first)
	atCut := full.Ends(t)
	full.Produce(t, rest)
	short := kafkatest.NewLog(t, topic, 3)
	short.Produce(t, first)
	if got := short.Ends(t); fmt.Sprint(got) != fmt.Sprint(atCut) {
		t.Fatalf("the cut log ends at %v, the full log was at %v", got, atCut)
	}
	ref, _ := h.Open(t)
	if err := rebuild(ctx, short, ref); err != nil {
		t.Fatal(err)
	}
	want := digest(t, ref)

	s, _ := h.Open(t)
	snap, ok := s.(projections.Snapshots)
	if !ok {
		t.Fatalf("%T keeps no as-of versions", s)
	}
	if err := rebuild(ctx, full, s); err != nil {
		t.Fatal(err)
	}
	live := digest(t, s)
	if live == want {
		t.Fatal("the full log and the cut log digest equally: the test proves nothing")
	}
	positions := projections.Cut{Positions: map[int32]int64{}}
	for p, end := range atCut {
		if end > 0 {
			positions.Positions[p] = end - 1
		}
	}
	asOf := func(cut projections.Cut) (string, error) {
		return projections.RebuildAsOf(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{full.Addr}}, Topic: full.Topic, Codec: full.Codec, Target: s}, cut)
	}
	cuts := []projections.Cut{positions, {Time: time.UnixMilli(cutTime)}}
	names := make([]string, len(cuts))
	for i, cut := range cuts {
		v, err := asOf(cut)
		if err != nil {
			t.Fatalf("as of %s: %v", cut, err)
		}
		names[i] = v
		got, err := snap.DigestVersion(ctx, v)
		if err != nil || got != want {
			t.Errorf("as of %s: digest %s, %v; a rebuild of the cut log digests %s", cut, got, err, want)
		}
		if ok, err := s.Promote(ctx, v); err == nil || ok {
			t.Errorf("as-of version %s promoted: ok=%v err=%v", v, ok, err)
		}
	}
	if got := digest(t, s); got != live {
		t.Errorf("as-of versions changed the active one: %s → %s", live, got)
	}
	bad := projections.Cut{Positions: map[int32]int64{0: 1, 7: 1}}
	if _, err := asOf(bad); !errors.Is(err, projections.ErrNoSuchPartition) {
		t.Errorf("as of a partition the log lacks: %v, want ErrNoSuchPartition", err)
	}
	vs, err := snap.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]projections.VersionInfo{}
	for _, v := range vs {
		listed[v.Name] = v
	}
	for i, v := range names {
		if l := listed[v]; l.State != "as-of" || l.AsOf != cuts[i].String() || l.Created.IsZero() {
			t.Errorf("version %s listed as %+v, want as-of %s with its creation time", v, l, cuts[i])
		}
	}
	active := 0
	for _, v := range vs {
		if v.State == "active" {
			active++
			if err := snap.Drop(ctx, v.Name); err == nil {
				t.Errorf("the active version %s was dropped", v.Name)
			}
		}
	}
	if active != 1 {
		t.Errorf("versions %+v: want one active", vs)
	}
	if err := snap.Drop(ctx, names[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := snap.DigestVersion(ctx, names[0]); !errors.Is(err, view.ErrUnknownVersion) {
		t.Errorf("digest of a dropped version: %v, want ErrUnknownVersion", err)
	}
	if err := snap.Drop(ctx, names[0]); !errors.Is(err, view.ErrUnknownVersion) {
		t.Errorf("dropping it again: %v, want ErrUnknownVersion", err)
	}
	if got, err := snap.DigestVersion(ctx, names[1]); err != nil || got != want {
		t.Errorf("dropping one as-of version changed another: %s, %v", got, err)
	}
}

func sends(user, prefix string, n int) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		env := chat(i, "r", user)
		env.ID = fmt.Sprint(prefix, i)
		out[i] = &events.MessageSent{Envelope: env, MessageID: fmt.Sprint(prefix, i), Text: prefix + " log"}
	}
	return out
}

// recreatedLogIsRefusedUntilRebuilt: the topic is deleted and created
// again under a store's checkpoints: a projector refuses to start
// (ErrLogChanged) and applies nothing of the new log; a rebuild promotes a
// version of the new log over the old one's higher offsets; a projector
// then follows the new log live.
func recreatedLogIsRefusedUntilRebuilt(t *testing.T, h Harness) {
	l := kafkatest.NewLog(t, topic, 2)
	s, _ := h.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l.Produce(t, sends("alice", "old-", 6))
	stop := run(ctx, t, l, s, "recreated")
	ends := l.Ends(t)
	testsvc.Eventually(t, time.Minute, "old log projected", func() bool { return caughtUp(s, ends) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := h.Messages(t, s, "r"); n != 6 {
		t.Fatalf("old log: %d messages, want 6", n)
	}
	oldCps, oldDigest := checkpoints(t, s), digest(t, s)

	// Same name, new id, offsets from zero.
	old, err := kafka.DescribeTopic(ctx, l.Client, topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(l.Client).DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	// Until the deletion is done, creating answers "already exists" with
	// the old topic.
	testsvc.Eventually(t, 10*time.Second, "topic recreated", func() bool {
		info, err := kafka.EnsureTopic(ctx, l.Client, topic, 2)
		return err == nil && info.ID != old.ID
	})
	l.Client = kafkatest.Client(t, l.Addr) // a client that never knew the old id
	l.Produce(t, sends("bob", "new-", 2))

	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	pr, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Group: "recreated", Codec: l.Codec, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Run(rctx); !errors.Is(err, projections.ErrLogChanged) || rctx.Err() != nil {
		t.Fatalf("projector on a recreated log: %v, want ErrLogChanged", err)
	}
	if cps := checkpoints(t, s); fmt.Sprint(cps) != fmt.Sprint(oldCps) {
		t.Errorf("checkpoints moved: %v, were %v", cps, oldCps)
	}
	if d := digest(t, s); d != oldDigest {
		t.Error("the refused start changed the projection")
	}

	if err := rebuild(ctx, l, s); err != nil {
		t.Fatalf("rebuild on the recreated log: %v", err)
	}
	if n := h.Messages(t, s, "r"); n != 2 {
		t.Errorf("after rebuild: %d messages, want the new log's 2", n)
	}
	fresh, _ := h.Open(t)
	stop = run(ctx, t, l, fresh, "fresh")
	ends = l.Ends(t)
	testsvc.Eventually(t, time.Minute, "new log projected into a fresh store", func() bool { return caughtUp(fresh, ends) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if digest(t, s) != digest(t, fresh) {
		t.Error("after rebuild the store differs from a fresh projection of the new log alone")
	}

	stop = run(ctx, t, l, s, "recreated-live")
	l.Produce(t, sends("bob", "new-live-", 1))
	ends = l.Ends(t)
	testsvc.Eventually(t, time.Minute, "new log projected live", func() bool { return caughtUp(s, ends) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := h.Messages(t, s, "r"); n != 3 {
		t.Errorf("live on the new log: %d messages, want 3", n)
	}
}

// The crash scenario's child process: Contract, run again by the test
// binary with childEnv set, projects until it is killed.
const childEnv = "RTSTACK_CONTRACT_CHILD" // place|brokers|group

func runChild(t *testing.T, h Harness, spec string) {
	f := strings.SplitN(spec, "|", 3)
	if len(f) != 3 {
		t.Fatalf("%s=%q: want place|brokers|group", childEnv, spec)
	}
	s := h.OpenAt(t, f[0])
	l := &kafkatest.Log{Addr: f[1], Topic: topic, Codec: kafkatest.Codec(t)}
	pr, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Group: f[2], Codec: l.Codec, Store: s,
		SessionTimeout: 6 * time.Second, MaxBatch: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Run(context.Background()); err != nil { // until kill -9
		t.Fatal(err)
	}
}

// startChild starts a projector process over place in consumer group
// group. A fresh group per run: the store's checkpoints, not the group,
// say where to start, and no run waits for a killed member to expire.
func startChild(t *testing.T, place, brokers, group string) *exec.Cmd {
	t.Helper()
	top := strings.SplitN(t.Name(), "/", 2)[0]
	return StartProcess(t, top, childEnv+"="+place+"|"+brokers+"|"+group)
}

// StartProcess runs the test function test of this test binary as a child
// process with env added (a helper the test kills), its output in a file
// of the test's temp dir. The child dies with the test process, and is
// killed when the test ends.
func StartProcess(t *testing.T, test string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+test+"$", "-test.count=1") //nolint:gosec // G204: the test binary itself, running its own test
	cmd.Env = append(os.Environ(), env...)
	out, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a failed test leaves no child behind
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
	return cmd
}

// Kill9 kills cmd with SIGKILL and reaps it.
func Kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

func applied(s projections.Store) int64 {
	cps, err := s.Checkpoints(context.Background())
	if err != nil {
		return -1
	}
	var n int64
	for _, o := range cps {
		n += o
	}
	return n
}

// kill9LosesAndDoublesNothing: projector processes are killed with
// SIGKILL at random points of a replay and restarted; at the end the store
// holds every event once (Verify) and equals a clean rebuild (Digest).
func kill9LosesAndDoublesNothing(t *testing.T, h Harness) {
	const total, rooms = 100_000, 200
	l := kafkatest.NewLog(t, topic, 6, kgo.MaxBufferedRecords(200_000))
	s, place := h.Open(t)
	g := NewTraffic(4, rooms)
	evs := g.Events(total)
	began := time.Now()
	l.Produce(t, evs)
	ends := l.Ends(t)
	var end int64
	for _, e := range ends {
		end += e
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)) //nolint:gosec // G404: where to kill, not a secret
	kills := 0
	for round := range 4 {
		cmd := startChild(t, place, l.Addr, fmt.Sprint("crash-", round))
		target := applied(s) + int64(rng.IntN(total/6)) + 500
		testsvc.Eventually(t, 90*time.Second, "replay progress", func() bool { return applied(s) >= min(target, end) })
		if caughtUp(s, ends) {
			Kill9(t, cmd)
			break
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // land anywhere inside a batch, not a wait for a condition
		Kill9(t, cmd)
		kills++
		t.Logf("round %d: killed at ~%d of %d records (%s)", round, applied(s), end, time.Since(began).Round(time.Millisecond))
	}
	cmd := startChild(t, place, l.Addr, "crash-final")
	testsvc.Eventually(t, 2*time.Minute, "final catch-up", func() bool { return caughtUp(s, ends) })
	Kill9(t, cmd)
	if kills < 2 {
		t.Logf("only %d kills landed mid-replay", kills)
	}
	var msgs int
	for i := range rooms {
		msgs += h.Messages(t, s, fmt.Sprintf("room-%d", i))
	}
	if msgs != g.UniqueSends() {
		t.Errorf("%d messages after %d kill -9s, want %d", msgs, kills, g.UniqueSends())
	}
	if h.Verify != nil {
		h.Verify(t, s, evs)
	}
	crashed := digest(t, s)
	if err := rebuild(ctx, l, s); err != nil {
		t.Fatal(err)
	}
	if clean := digest(t, s); clean != crashed {
		t.Errorf("digest after %d kill -9s %s != clean rebuild %s", kills, crashed, clean)
	}
}

// dataLossIsRecovered: the store loses its data under a running projector,
// which notices (ErrStoreReset, or the idle probe) and replays the log:
// the content comes back equal to what it was.
func dataLossIsRecovered(t *testing.T, h Harness) {
	l := kafkatest.NewLog(t, topic, 3)
	s, _ := h.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g := NewTraffic(9, 6)
	l.Produce(t, g.Events(300))
	stop := run(ctx, t, l, s, "loss")
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	ends := l.Ends(t)
	testsvc.Eventually(t, time.Minute, "log projected", func() bool { return caughtUp(s, ends) })
	before := digest(t, s)
	h.Lose(t, s)
	testsvc.Eventually(t, time.Minute, "the lost data replayed", func() bool {
		d, err := s.Digest(ctx)
		return err == nil && d == before && caughtUp(s, ends)
	})
}
