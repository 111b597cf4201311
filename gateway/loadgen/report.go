package loadgen

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the outcome of a run. Rates are over the sending window; the
// totals include what arrived while draining.
type Report struct {
	Mode      string  `json:"mode"` // open, closed or idle
	Clients   int     `json:"clients"`
	Connected int     `json:"connected"` // clients that joined their room
	Rooms     int     `json:"rooms"`
	Senders   int     `json:"senders"`
	Rate      float64 `json:"rate,omitempty"`
	Window    int     `json:"window,omitempty"`

	ConnectSeconds float64 `json:"connect_s"`  // dialling and joining every client
	WindowSeconds  float64 `json:"duration_s"` // the sending window

	// Within the window.
	Sent            int64   `json:"sent"`
	Acked           int64   `json:"acked"`
	Delivered       int64   `json:"delivered"`
	SentPerSec      float64 `json:"sent_per_s"`
	AckedPerSec     float64 `json:"acked_per_s"`
	DeliveredPerSec float64 `json:"delivered_per_s"`

	// After the drain.
	TotalSent      int64 `json:"total_sent"`
	TotalAcked     int64 `json:"total_acked"`
	TotalRefused   int64 `json:"total_refused"`   // answered with an error frame
	Unanswered     int64 `json:"unanswered"`      // neither acked nor refused
	TotalDelivered int64 `json:"total_delivered"` // message objects received over all clients
	Expected       int64 `json:"expected_deliveries"`
	Missing        int64 `json:"missing_deliveries"` // expected − delivered, never negative

	AckLatency      Latency `json:"ack_latency_ms"`
	DeliveryLatency Latency `json:"delivery_latency_ms"`

	Errors      map[string]int64 `json:"errors"`      // error frames by code (connect failures as "connect")
	Disconnects map[string]int64 `json:"disconnects"` // by WebSocket close code, or "abnormal"

	// CPUSeconds is the generator's own user+system CPU time in the window;
	// CPUCores is that over the window's length. Near the machine's core
	// count, the generator, not the server, is the limit.
	CPUSeconds float64 `json:"cpu_s"`
	CPUCores   float64 `json:"cpu_cores"`
}

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// summarise reads a histogram of microseconds.
func summarise(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1e3 }
	return Latency{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// measured is what a run hands to the report.
type measured struct {
	cfg              *Config
	connected        int
	connect, window  time.Duration
	inWindow, final  snapshot
	cpu              time.Duration
	errors, discs    map[string]int64
	ackLat, delivLat *hdrhistogram.Histogram
}

func buildReport(m measured) *Report {
	c := m.cfg
	r := &Report{
		Mode: c.mode(), Clients: c.Clients, Connected: m.connected, Rooms: c.Rooms, Senders: c.Senders,
		Rate: c.Rate, Window: c.Window,
		ConnectSeconds: m.connect.Seconds(), WindowSeconds: m.window.Seconds(),
		Sent: m.inWindow.sent, Acked: m.inWindow.acked, Delivered: m.inWindow.delivered,
		TotalSent: m.final.sent, TotalAcked: m.final.acked, TotalRefused: m.final.refused,
		Unanswered:     max(0, m.final.sent-m.final.acked-m.final.refused),
		TotalDelivered: m.final.delivered, Expected: m.final.expected,
		Missing:    max(0, m.final.expected-m.final.delivered),
		AckLatency: summarise(m.ackLat), DeliveryLatency: summarise(m.delivLat),
		Errors: m.errors, Disconnects: m.discs,
		CPUSeconds: m.cpu.Seconds(),
	}
	if s := m.window.Seconds(); s > 0 {
		r.SentPerSec = float64(r.Sent) / s
		r.AckedPerSec = float64(r.Acked) / s
		r.DeliveredPerSec = float64(r.Delivered) / s
		r.CPUCores = r.CPUSeconds / s
	}
	if r.Errors == nil {
		r.Errors = map[string]int64{}
	}
	if r.Disconnects == nil {
		r.Disconnects = map[string]int64{}
	}
	return r
}

// String is the report for people.
func (r *Report) String() string {
	var b strings.Builder
	load := "idle connections"
	switch r.Mode {
	case "open":
		load = fmt.Sprintf("open loop at %s msg/s", si(r.Rate))
	case "closed":
		load = fmt.Sprintf("closed loop, %d in flight per sender", r.Window)
	}
	fmt.Fprintf(&b, "%d/%d clients joined over %d rooms in %.1fs; %d senders, %s, for %.1fs\n",
		r.Connected, r.Clients, r.Rooms, r.ConnectSeconds, r.Senders, load, r.WindowSeconds)
	fmt.Fprintf(&b, "  sent       %10s/s  (%d)\n", si(r.SentPerSec), r.Sent)
	fmt.Fprintf(&b, "  acked      %10s/s  (%d)\n", si(r.AckedPerSec), r.Acked)
	fmt.Fprintf(&b, "  delivered  %10s/s  (%d)\n", si(r.DeliveredPerSec), r.Delivered)
	fmt.Fprintf(&b, "  after drain: sent %d, acked %d, refused %d, unanswered %d; delivered %d of %d expected (%d missing)\n",
		r.TotalSent, r.TotalAcked, r.TotalRefused, r.Unanswered, r.TotalDelivered, r.Expected, r.Missing)
	fmt.Fprintf(&b, "  latency ms        p50      p99    p99.9      max    count\n")
	for _, l := range []struct {
		name string
		l    Latency
	}{{"send→ack", r.AckLatency}, {"send→delivery", r.DeliveryLatency}} {
		fmt.Fprintf(&b, "  %-13s %8.2f %8.2f %8.2f %8.2f %8d\n", l.name, l.l.P50, l.l.P99, l.l.P999, l.l.Max, l.l.Count)
	}
	fmt.Fprintf(&b, "  errors       %s\n", byKey(r.Errors))
	fmt.Fprintf(&b, "  disconnects  %s\n", byKey(r.Disconnects))
	fmt.Fprintf(&b, "  generator CPU %.2fs (%.2f cores)\n", r.CPUSeconds, r.CPUCores)
	return b.String()
}

// byKey lists a map as "a=1 b=2" in key order, or "none".
func byKey(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// si formats a rate with k/M suffixes.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
