package loadgen

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

func TestSummarise(t *testing.T) {
	l := newLatencies()
	// 1..10,000 ms, spread over the shards as many readers would.
	for v := int64(1); v <= 10000; v++ {
		l.record(int(v), []int64{v * 1000})
	}
	got := summarise(l.merged())
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"p50", got.P50, 5000}, {"p99", got.P99, 9900}, {"p99.9", got.P999, 9990}, {"max", got.Max, 10000},
	} {
		// hdrhistogram keeps 3 significant digits.
		if math.Abs(c.got-c.want) > c.want*1e-3 {
			t.Errorf("%s = %v ms, want %v", c.name, c.got, c.want)
		}
	}
	if got.Count != 10000 {
		t.Errorf("count %d, want 10000", got.Count)
	}
	if empty := summarise(hdrhistogram.New(histMin, histMax, histDigits)); empty != (Latency{}) {
		t.Errorf("empty histogram: %+v", empty)
	}
}

// Values outside the histogram's range are clamped, not dropped.
func TestRecordClamps(t *testing.T) {
	l := newLatencies()
	l.record(0, []int64{-5, 0, histMax * 10})
	h := l.merged()
	if h.TotalCount() != 3 {
		t.Fatalf("count %d, want 3", h.TotalCount())
	}
	if h.Min() != histMin || !h.ValuesAreEquivalent(h.Max(), histMax) {
		t.Errorf("min %d max %d, want %d and ~%d", h.Min(), h.Max(), histMin, int64(histMax))
	}
}

func TestBuildReport(t *testing.T) {
	cfg := &Config{Clients: 10, Rooms: 2, Senders: 2, Window: 4}
	ack := hdrhistogram.New(histMin, histMax, histDigits)
	_ = ack.RecordValue(2000)
	r := buildReport(measured{
		cfg: cfg, connected: 10, connect: time.Second, window: 2 * time.Second,
		inWindow: snapshot{sent: 100, acked: 90, delivered: 450},
		final:    snapshot{sent: 110, acked: 100, refused: 4, delivered: 480, expected: 500},
		cpu:      500 * time.Millisecond,
		errors:   map[string]int64{"rate_limited": 4},
		ackLat:   ack, delivLat: hdrhistogram.New(histMin, histMax, histDigits),
	})
	want := Report{
		Mode: "closed", Clients: 10, Connected: 10, Rooms: 2, Senders: 2, Window: 4,
		ConnectSeconds: 1, WindowSeconds: 2,
		Sent: 100, Acked: 90, Delivered: 450, SentPerSec: 50, AckedPerSec: 45, DeliveredPerSec: 225,
		TotalSent: 110, TotalAcked: 100, TotalRefused: 4, Unanswered: 6,
		TotalDelivered: 480, Expected: 500, Missing: 20,
		AckLatency: Latency{Count: 1, P50: 2, P99: 2, P999: 2, Max: 2},
		Errors:     map[string]int64{"rate_limited": 4}, Disconnects: map[string]int64{},
		CPUSeconds: 0.5, CPUCores: 0.25,
	}
	gotJSON, _ := json.Marshal(r)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("report\n got %s\nwant %s", gotJSON, wantJSON)
	}
	// More delivered than expected (a resend delivered twice) is never
	// negative missing.
	r = buildReport(measured{cfg: cfg, final: snapshot{delivered: 5, expected: 3, sent: 1, acked: 2},
		ackLat: ack, delivLat: ack})
	if r.Missing != 0 || r.Unanswered != 0 || r.SentPerSec != 0 {
		t.Errorf("missing %d, unanswered %d, sent/s %v: want 0 (zero window)", r.Missing, r.Unanswered, r.SentPerSec)
	}
}

func TestReportString(t *testing.T) {
	r := &Report{Mode: "open", Rate: 200, Clients: 3, Connected: 3, Rooms: 1, Senders: 1, WindowSeconds: 1,
		DeliveredPerSec: 2.5e6, Errors: map[string]int64{"b": 2, "a": 1}}
	s := r.String()
	for _, want := range []string{"open loop at 200 msg/s", "2.50M/s", "errors       a=1 b=2", "disconnects  none", "send→delivery"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}

func TestCounts(t *testing.T) {
	c := newCounts()
	c.sent.Add(3)
	c.addError("x")
	c.addError("x")
	c.addDisconnect(4008)
	c.addDisconnect(0)
	s := c.snapshot()
	if s.sent != 3 || s.errors != 2 || s.disconnects != 2 {
		t.Errorf("snapshot %+v", s)
	}
	errs, discs := c.maps()
	if errs["x"] != 2 || discs["4008"] != 1 || discs["abnormal"] != 1 {
		t.Errorf("errors %v, disconnects %v", errs, discs)
	}
}
