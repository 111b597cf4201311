package projections_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
)

func joinedEvents(n int) []events.Event {
	evs := make([]events.Event, n)
	for i := range evs {
		evs[i] = joined(i)
	}
	return evs
}

// Admin tools read a projector's lag from its consumer group: after
// traffic it reaches 0, and a group left behind the store's checkpoints
// (a crash between the store's commit and the group's, a promoted
// rebuild) is moved up to them without waiting for new records. The age
// gauge of a caught-up partition is 0, although its last event is old.
func TestProjectorKeepsItsGroupAtTheCheckpoints(t *testing.T) {
	testsvc.Integration(t)
	const topic, group, n = "chat.events", "lag-test", 30
	l := kafkatest.NewLog(t, topic, 3)
	l.Produce(t, joinedEvents(n))
	store := newMemStore()
	reg := prometheus.NewRegistry()
	cfg := projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Group: group, Codec: l.Codec,
		Store: store, Registerer: reg, LagInterval: 100 * time.Millisecond}
	_, stop := projectionstest.Start(t, cfg)
	testsvc.Eventually(t, 20*time.Second, "group lag 0 after traffic", func() bool {
		return kafkatest.GroupLag(t, l.Client, group, topic) == 0
	})
	// The events happened in 1970: an age measured from them would be
	// decades, on partitions with nothing left to apply.
	testsvc.Eventually(t, 10*time.Second, "age 0 on caught-up partitions", func() bool {
		return gaugeValues(t, reg, "rtstack_projection_age_seconds") == 3 && counterSum(t, reg, "rtstack_projection_age_seconds") == 0
	})
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rewind := kadm.Offsets{}
	for p := range l.Ends(t) {
		rewind.Add(kadm.Offset{Topic: topic, Partition: p, At: 0, LeaderEpoch: -1})
	}
	resp, err := kadm.NewClient(l.Client).CommitOffsets(ctx, group, rewind)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	if lag := kafkatest.GroupLag(t, l.Client, group, topic); lag != n {
		t.Fatalf("rewound group lag %d, want %d", lag, n)
	}

	projectionstest.Start(t, cfg)
	testsvc.Eventually(t, 20*time.Second, "group moved to the checkpoints with no new record", func() bool {
		return kafkatest.GroupLag(t, l.Client, group, topic) == 0
	})
	got := 0
	for _, ids := range store.ids() {
		got += len(ids)
	}
	if got != n {
		t.Errorf("%d events applied, want %d: the rewound group must not replay into the store", got, n)
	}
}

// A rebuild reads without joining a group, but commits its position to
// RebuildGroupPrefix+name while it runs, so its lag is visible; it deletes
// the group when done.
func TestRebuildShowsItsLagInAGroup(t *testing.T) {
	testsvc.Integration(t)
	const topic, n = "chat.events", 40
	l := kafkatest.NewLog(t, topic, 3)
	l.Produce(t, joinedEvents(n))
	group := projections.RebuildGroupPrefix + "mem"
	sawCaughtUp := false
	target := &promoteWhen{memStore: newMemStore(), ready: func() bool {
		// Promotion waits until the group shows the rebuild caught up.
		sawCaughtUp = kafkatest.GroupLag(t, l.Client, group, topic) == 0
		return sawCaughtUp
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := projections.Rebuild(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Codec: l.Codec, Target: target})
	if err != nil || !sawCaughtUp {
		t.Fatalf("rebuild: %v; group caught up: %v", err, sawCaughtUp)
	}
	groups, err := kadm.NewClient(l.Client).ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(groups.Groups(), group) {
		t.Errorf("group %s still exists after the rebuild", group)
	}
}

// promoteWhen promotes only once ready says so.
type promoteWhen struct {
	*memStore
	ready func() bool
}

func (s *promoteWhen) Promote(ctx context.Context, version string) (bool, error) {
	if !s.ready() {
		return false, nil
	}
	return s.memStore.Promote(ctx, version)
}

// gaugeValues counts the series of the metric name.
func gaugeValues(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
