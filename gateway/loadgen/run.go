package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// connectTimeout bounds dialling and joining one client.
const connectTimeout = 30 * time.Second

// run is the state of one Run.
type run struct {
	cfg         *Config
	base        time.Time
	counts      *counts
	ackLat      *latencies
	deliveryLat *latencies
	members     []atomic.Int64 // per room: clients joined, read by readers as acks arrive
	closing     atomic.Bool    // the run is closing its connections: read errors are not disconnects
}

// clock is nanoseconds on the run's monotonic clock.
func (r *run) clock() int64 { return int64(time.Since(r.base)) }

// Run connects cfg.Clients clients, joins them, sends for cfg.Duration,
// drains, closes every connection and reports. Cancelling ctx ends the
// sending window early; the report then covers the time that ran. It fails
// only when no client could join or cfg is invalid; single connect failures
// are counted under Errors["connect"].
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &run{cfg: &cfg, base: time.Now(), counts: newCounts(), ackLat: newLatencies(), deliveryLat: newLatencies(),
		members: make([]atomic.Int64, cfg.Rooms)}

	var readers sync.WaitGroup
	clients, firstErr := r.connectAll(ctx, &readers)
	connected := time.Since(r.base)
	defer func() {
		r.closing.Store(true)
		closeAll(clients)
		readers.Wait()
	}()
	if len(clients) == 0 {
		return nil, fmt.Errorf("loadgen: no client could join: %w", firstErr)
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}

	cpu0 := cpuTime()
	start := time.Now()
	stop := make(chan struct{})
	var senders sync.WaitGroup
	r.startSenders(&senders, clients, stop)
	stopProgress := r.progress(start)
	timer := time.NewTimer(cfg.Duration)
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
	timer.Stop()
	inWindow := r.counts.snapshot()
	window, cpu := time.Since(start), cpuTime()-cpu0
	close(stop)
	senders.Wait()
	r.drain(ctx)
	stopProgress()

	errs, discs := r.counts.maps()
	return buildReport(measured{
		cfg: &cfg, connected: len(clients), connect: connected, window: window,
		inWindow: inWindow, final: r.counts.snapshot(), cpu: cpu, errors: errs, discs: discs,
		ackLat: r.ackLat.merged(), delivLat: r.deliveryLat.merged(),
	}), nil
}

// connectAll opens and joins every client, DialConcurrency at a time, and
// starts each one's reader as soon as it joined (the room's other joins
// already flow to it). It returns those that joined and the first failure.
func (r *run) connectAll(ctx context.Context, readers *sync.WaitGroup) ([]*client, error) {
	var (
		mu       sync.Mutex // guards joined and firstErr
		joined   []*client
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, r.cfg.DialConcurrency)
	)
	for i := range r.cfg.Clients {
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			c := &client{r: r, i: i, room: i % r.cfg.Rooms, dead: make(chan struct{}), inflight: map[string]int64{}}
			if i < r.cfg.Senders && r.cfg.Window > 0 {
				c.window = make(chan struct{}, r.cfg.Window)
			}
			cctx, cancel := context.WithTimeout(ctx, connectTimeout)
			err := c.connect(cctx)
			cancel()
			if err != nil {
				r.counts.addError("connect")
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("client %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			r.members[c.room].Add(1)
			readers.Go(c.read)
			mu.Lock()
			joined = append(joined, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return joined, firstErr
}

// startSenders starts the sending loop of every sender; each ends at stop
// or when its connection does.
func (r *run) startSenders(wg *sync.WaitGroup, clients []*client, stop <-chan struct{}) {
	var senders []*client
	for _, c := range clients {
		if c.i < r.cfg.Senders {
			senders = append(senders, c)
		}
	}
	if len(senders) == 0 {
		return
	}
	if r.cfg.Window > 0 {
		for _, c := range senders {
			wg.Go(func() { c.closedLoop(stop) })
		}
		return
	}
	// Each sender sends Rate/Senders per second, staggered evenly over one
	// interval so the room sees a steady stream, not bursts.
	interval := time.Duration(float64(time.Second) * float64(len(senders)) / r.cfg.Rate)
	start := r.clock()
	for k, c := range senders {
		offset := interval * time.Duration(k) / time.Duration(len(senders))
		wg.Go(func() { c.openLoop(stop, start, offset, interval) })
	}
}

// drain waits, up to cfg.Drain, until every send is answered and every
// expected delivery arrived.
func (r *run) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.Drain)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s := r.counts.snapshot()
		if s.acked+s.refused >= s.sent && s.delivered >= s.expected {
			return
		}
		if time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// closeAll says goodbye to every connection and closes it; the readers end.
func closeAll(clients []*client) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "load test done")
	for _, c := range clients {
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = c.ws.Close()
	}
}
