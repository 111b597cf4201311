package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// recoveryHeapBound is what 9 concurrent recoveries of 40 MB each may add
// to the live heap: by the defaults each holds at most 1 MiB of queue and
// about 2 MiB of fetched records, so 9 × 3 MiB plus decoding garbage.
const recoveryHeapBound = 64 << 20

// Eight slow readers and one that stops reading recover the same 10,000
// records of 4 KB (40 MB each) at once. The live heap stays under
// recoveryHeapBound above where it started, every slow reader gets every
// message in log order, and the one that stopped is closed with
// CloseSlowClient instead of being buffered for.
func TestRecoveryHeapBounded(t *testing.T) {
	const (
		records = 10000
		readers = 8
		room    = "big"
	)
	st := newStack(t, stackOpts{partitions: 1})
	text := strings.Repeat("x", 4096)
	evs := make([]events.Event, records)
	ids := make([]string, records)
	for i := range evs {
		ids[i] = fmt.Sprintf("m%05d", i)
		evs[i] = &events.MessageSent{Envelope: events.Envelope{ID: "e" + ids[i], Room: room, User: "bob", Time: int64(i)},
			MessageID: ids[i], Text: text}
	}
	log := &kafkatest.Log{Addr: st.addr, Topic: topic, Client: st.cl, Codec: st.codec}
	log.Produce(t, evs) // before the gateway starts: all of it is history to recover

	reg := prometheus.NewRegistry()
	g := st.gateway(t, func(c *gateway.Config) {
		c.MaxRecoveries = readers + 1
		c.RecoveryWindow = 2 * records
		c.WriteWait = 10 * time.Minute // the stall is noticed by SlowClientWait, not by a failed write
		// Generous: on a loaded 2-core machine under -race a reader that is
		// reading may not be scheduled for seconds; only the stalled one
		// may be taken for a client that stopped reading.
		c.SlowClientWait = 20 * time.Second
		c.Registerer = reg
	})

	prev := debug.SetGCPercent(10) // collect often, so the live heap is sampled closely
	defer debug.SetGCPercent(prev)
	runtime.GC()
	base := readHeap()
	stopSampling := make(chan struct{})
	peak := make(chan heapSample, 1)
	go func() { peak <- sampleHeap(stopSampling) }()

	join := map[string]any{"type": "join", "room": room, "since": map[string]any{"partition": 0, "offset": -1}}
	// Default socket buffers: the kernel takes a few MB before the
	// gateway's queue fills, and gives them back quickly once it reads.
	stalled := g.dialWith(t, "stalled", websocket.DefaultDialer, false)
	stalled.send(join)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		ws, _, err := websocket.DefaultDialer.Dial(g.url(g.token(t, fmt.Sprint("reader", i))), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if err := ws.WriteJSON(join); err != nil {
			t.Fatal(err)
		}
		// 4 MB/s: far slower than the replay reads the log.
		lim := rate.NewLimiter(4<<20, 1<<20)
		wg.Go(func() { errs[i] = readInOrder(ctx, ws, ids, lim) })
	}
	wg.Wait()
	close(stopSampling)
	p := <-peak
	for i, err := range errs {
		if err != nil {
			t.Errorf("reader %d: %v", i, err)
		}
	}
	t.Logf("heap: live %d MiB at start, peak %d MiB (+%d MiB); heap objects peak +%d MiB (GOGC=10)",
		base.live>>20, p.live>>20, (p.live-base.live)>>20, (p.objects-min(base.objects, p.objects))>>20)
	if p.live > base.live && p.live-base.live > recoveryHeapBound {
		t.Errorf("live heap grew by %d MiB during the recoveries, bound %d MiB", (p.live-base.live)>>20, recoveryHeapBound>>20)
	}

	testsvc.Eventually(t, 90*time.Second, "the stalled reader counted as a slow client", func() bool {
		return gather(t, reg)["rtstack_gateway_drops_total"] >= 1
	})
	stalled.startReading()
	if code := stalled.closeCode(); code != gateway.CloseSlowClient {
		t.Fatalf("the reader that stopped was closed with %d, want %d", code, gateway.CloseSlowClient)
	}
}

// readInOrder reads ws at lim's pace until it got a message frame for each
// of ids, in order, keeping nothing else.
func readInOrder(ctx context.Context, ws *websocket.Conn, ids []string, lim *rate.Limiter) error {
	next := 0
	for next < len(ids) {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %d of %d messages: %w", next, len(ids), err)
		}
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			var f struct {
				Type      string `json:"type"`
				MessageID string `json:"message_id"`
				Code      string `json:"code"`
				Reason    string `json:"reason"`
			}
			if err := json.Unmarshal(line, &f); err != nil {
				return err
			}
			switch {
			case f.Type == "error" || f.Type == "resync":
				return fmt.Errorf("after %d messages: %s %s%s", next, f.Type, f.Code, f.Reason)
			case f.Type != "message":
			case next < len(ids) && f.MessageID == ids[next]:
				next++
			default:
				return fmt.Errorf("message %s where %s was due", f.MessageID, ids[min(next, len(ids)-1)])
			}
		}
		if err := lim.WaitN(ctx, min(len(data), lim.Burst())); err != nil {
			return err
		}
	}
	return nil
}

type heapSample struct{ live, objects uint64 }

var heapMetrics = []string{"/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes"}

func readHeap() heapSample {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	return heapSample{s[0].Value.Uint64(), s[1].Value.Uint64()}
}

// sampleHeap returns the peak of each heap figure until stop is closed.
func sampleHeap(stop <-chan struct{}) heapSample {
	var peak heapSample
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		h := readHeap()
		peak.live, peak.objects = max(peak.live, h.live), max(peak.objects, h.objects)
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}
