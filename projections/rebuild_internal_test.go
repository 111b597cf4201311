package projections

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func recs(offsets ...int64) []*kgo.Record {
	out := make([]*kgo.Record, len(offsets))
	for i, o := range offsets {
		out[i] = &kgo.Record{Offset: o}
	}
	return out
}

func offsets(rs []*kgo.Record) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.Offset
	}
	return out
}

// gather merges what is queued, up to maxBatch, and drops batches of
// another generation (fetched before a re-seek).
func TestGather(t *testing.T) {
	tests := []struct {
		name     string
		queued   []fetched
		gen      uint64
		maxBatch int
		want     []int64
		left     int // batches still queued
	}{
		{"nothing queued", nil, 0, 10, []int64{0, 1}, 0},
		{"merges queued", []fetched{{recs: recs(2, 3)}, {recs: recs(4)}}, 0, 10, []int64{0, 1, 2, 3, 4}, 0},
		{"stops at maxBatch", []fetched{{recs: recs(2, 3)}, {recs: recs(4)}}, 0, 4, []int64{0, 1, 2, 3}, 1},
		{"drops old generation", []fetched{{gen: 1, recs: recs(7)}, {gen: 2, recs: recs(2)}}, 2, 10, []int64{0, 1, 2}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := make(chan fetched, len(tc.queued))
			for _, f := range tc.queued {
				in <- f
			}
			got := gather(recs(9, 9, 9), recs(0, 1), in, tc.gen, tc.maxBatch)
			if !slices.Equal(offsets(got), tc.want) {
				t.Errorf("gathered %v, want %v", offsets(got), tc.want)
			}
			if len(in) != tc.left {
				t.Errorf("%d batches left queued, want %d", len(in), tc.left)
			}
		})
	}
}

// The promote loop's questions: caught up with the end offsets, and how
// much is done of how much.
func TestRebuildCaughtUpAndProgress(t *testing.T) {
	var calls [][2]int64
	rm, err := newRebuildMetrics(nil) // unregistered gauges, as Rebuild makes them without a Registerer
	if err != nil {
		t.Fatal(err)
	}
	r := &rebuild{
		cfg:      RebuildConfig{Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }},
		metrics:  rm,
		start:    map[int32]int64{0: 10, 1: 0},
		appliers: []*applier{{}, {}},
	}
	r.appliers[0].next.Store(15)
	r.appliers[1].next.Store(5)
	ends := map[int32]int64{0: 20, 1: 5}
	if r.caughtUp(ends) {
		t.Error("caught up although partition 0 is at 15 of 20")
	}
	r.report(ends)
	r.appliers[0].next.Store(20)
	if !r.caughtUp(ends) {
		t.Error("not caught up although every partition reached its end")
	}
	r.report(ends)
	r.appliers[1].next.Store(8) // the live tail moved past the ends read
	r.report(ends)
	want := [][2]int64{{10, 15}, {15, 15}, {18, 18}}
	if !slices.Equal(calls, want) {
		t.Errorf("progress calls %v, want %v", calls, want)
	}
}

// A store's classifier decides what is permanent; ErrLogChanged always is.
func TestPermanent(t *testing.T) {
	if permanent(nil, errStopped) {
		t.Error("an error of a store without a classifier is permanent")
	}
	if !permanent(nil, ErrLogChanged) {
		t.Error("ErrLogChanged is not permanent")
	}
	if !permanent(nil, LogMismatch("v1", "a@one", "b@two")) {
		t.Error("a store bound to another cluster's log is not permanent")
	}
}
