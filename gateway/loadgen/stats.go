package loadgen

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, to three
// significant digits.
const (
	histMin    = 1
	histMax    = 5 * 60 * 1e6
	histDigits = 3
	// histShards spreads the clients' readers over several histograms, so
	// thousands of readers do not queue on one lock (and thousands of
	// histograms do not each cost ~100 KiB).
	histShards = 16
)

// latencies is a histogram safe for concurrent use.
type latencies struct {
	shards [histShards]struct {
		mu sync.Mutex // guards h
		h  *hdrhistogram.Histogram
	}
}

func newLatencies() *latencies {
	l := &latencies{}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(histMin, histMax, histDigits)
	}
	return l
}

// record adds values (µs) to the shard of client i; values beyond the range
// are clamped, so none is lost from the count.
func (l *latencies) record(i int, values []int64) {
	if len(values) == 0 {
		return
	}
	s := &l.shards[i%histShards]
	s.mu.Lock()
	for _, v := range values {
		_ = s.h.RecordValue(min(max(v, histMin), histMax))
	}
	s.mu.Unlock()
}

// merged returns one histogram of every shard.
func (l *latencies) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(histMin, histMax, histDigits)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// counts are the run's counters, updated by every client.
type counts struct {
	sent      atomic.Int64 // send frames written
	acked     atomic.Int64 // acks matched to a send of this run
	refused   atomic.Int64 // sends answered by an error frame
	delivered atomic.Int64 // message objects of this run received, over all clients
	expected  atomic.Int64 // deliveries due: each acked message × its room's members

	mu          sync.Mutex       // guards the maps
	errors      map[string]int64 // error frames by code
	disconnects map[string]int64 // connections lost before the end, by close code
}

func newCounts() *counts {
	return &counts{errors: map[string]int64{}, disconnects: map[string]int64{}}
}

func (c *counts) addError(code string) {
	c.mu.Lock()
	c.errors[code]++
	c.mu.Unlock()
}

func (c *counts) addDisconnect(closeCode int) {
	key := "abnormal"
	if closeCode > 0 {
		key = strconv.Itoa(closeCode)
	}
	c.mu.Lock()
	c.disconnects[key]++
	c.mu.Unlock()
}

// snapshot is the counters at one moment.
type snapshot struct {
	sent, acked, refused, delivered, expected int64
	errors, disconnects                       int64
}

func (c *counts) snapshot() snapshot {
	s := snapshot{sent: c.sent.Load(), acked: c.acked.Load(), refused: c.refused.Load(),
		delivered: c.delivered.Load(), expected: c.expected.Load()}
	c.mu.Lock()
	for _, n := range c.errors {
		s.errors += n
	}
	for _, n := range c.disconnects {
		s.disconnects += n
	}
	c.mu.Unlock()
	return s
}

func (c *counts) maps() (errors, disconnects map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.errors), maps.Clone(c.disconnects)
}
