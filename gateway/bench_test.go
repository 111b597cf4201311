package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/testsvc"
)

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkAppend measures send → ack over a WebSocket against the embedded
// broker, and as its baseline a raw kgo ProduceSync of the same event
// through the same client, in the same run.
func BenchmarkAppend(b *testing.B) {
	st, ws := benchConn(b)
	roundTrip := func(msg []byte, want []byte) {
		if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			b.Fatal(err)
		}
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(data, []byte(`"type":"error"`)) {
				b.Fatalf("error frame: %s", data)
			}
			if bytes.Contains(data, want) {
				return
			}
		}
	}
	roundTrip([]byte(`{"type":"join","room":"bench","client_id":"j"}`), []byte(`"client_id":"j"`))
	text := strings.Repeat("x", 100)

	b.ResetTimer()
	ws1 := make([]time.Duration, 0, b.N)
	for i := range b.N {
		id := fmt.Sprint("c", i)
		start := time.Now()
		roundTrip(fmt.Appendf(nil, `{"type":"send","room":"bench","client_id":%q,"text":%q}`, id, text), []byte(`"type":"ack","client_id":"`+id+`"`))
		ws1 = append(ws1, time.Since(start))
	}
	b.StopTimer()

	raw := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	for i := range b.N {
		ev := &events.MessageSent{Envelope: events.Envelope{ID: fmt.Sprint("e", i), Room: "bench", User: "bench", Time: time.Now().UnixMilli()},
			MessageID: fmt.Sprint("m", i), ClientID: fmt.Sprint("raw", i), Text: text}
		rec, err := kafka.NewRecord(st.codec, topic, ev)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := st.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			b.Fatal(err)
		}
		raw = append(raw, time.Since(start))
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(percentile(ws1, 0.50)), "ack-p50-µs")
	b.ReportMetric(us(percentile(ws1, 0.99)), "ack-p99-µs")
	b.ReportMetric(us(percentile(raw, 0.50)), "produce-p50-µs")
	b.ReportMetric(us(percentile(raw, 0.99)), "produce-p99-µs")
	if p := percentile(raw, 0.50); p > 0 {
		b.ReportMetric(float64(percentile(ws1, 0.50))/float64(p), "p50-ratio")
	}
}

// benchConn is a stack, a gateway with the rate limits off and one
// WebSocket to it, closed when b ends.
func benchConn(b *testing.B) (*stack, *websocket.Conn) {
	st := newStack(b, stackOpts{})
	g := st.gateway(b, nil)
	ws, _, err := websocket.DefaultDialer.Dial(g.url(g.token(b, "bench")), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ws.Close() })
	return st, ws
}

const fanoutClients = 1000

// countingClients dials n WebSocket clients whose readers count the
// objects of type message they receive.
type countingClients struct {
	conns  []*websocket.Conn
	counts []atomic.Int64
	wg     sync.WaitGroup
}

func dialCounting(b *testing.B, url string, n int, onOpen func(ws *websocket.Conn)) *countingClients {
	cc := &countingClients{counts: make([]atomic.Int64, n)}
	marker := []byte(`"type":"message"`)
	for i := range n {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		cc.conns = append(cc.conns, ws)
		if onOpen != nil {
			onOpen(ws)
		}
		cc.wg.Go(func() {
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				cc.counts[i].Add(int64(bytes.Count(data, marker)))
			}
		})
	}
	return cc
}

func (cc *countingClients) close() {
	for _, ws := range cc.conns {
		_ = ws.Close()
	}
	cc.wg.Wait()
}

// wait polls until every client counted target messages more than base
// (nil: zero).
func (cc *countingClients) wait(b *testing.B, base []int64, target int64) {
	deadline := time.Now().Add(2 * time.Minute)
	for i := range cc.counts {
		if base != nil {
			target += base[i]
		}
		for cc.counts[i].Load() < target {
			if time.Now().After(deadline) {
				b.Fatalf("client %d got %d messages, want %d", i, cc.counts[i].Load(), target)
			}
			time.Sleep(time.Millisecond)
		}
		if base != nil {
			target -= base[i]
		}
	}
}

// BenchmarkFanout measures messages/s delivered by the gateway to 1,000
// WebSocket clients in one room (from the log tail, packed frames), and as
// its baseline raw gorilla writes of the same bytes, one frame per message
// per client, in the same run; closed: as fast as they go; 200msg/s: one
// message every 5 ms (each a batch of its own), where the figure that
// matters is CPU per delivery.
func BenchmarkFanout(b *testing.B) {
	b.Run("closed", func(b *testing.B) { benchFanout(b, 0) })
	b.Run("200msg/s", func(b *testing.B) { benchFanout(b, 5*time.Millisecond) })
}

// benchFanout sends a message every pace (0: without pause).
func benchFanout(b *testing.B, pace time.Duration) {
	st := newStack(b, stackOpts{})
	// A queue that holds the whole run: this measures throughput, not the
	// slow-client policy.
	g := st.gateway(b, func(c *gateway.Config) {
		c.SendQueue = max(4096, 2*b.N)
		c.SendQueueBytes = c.SendQueue << 10
		c.UserConnLimit = fanoutClients // one user, many tabs
	})

	// Each client joins and waits for its own joined frame before the next:
	// 1,000 appends of MemberJoined.
	cc := dialCounting(b, g.url(g.token(b, "reader")), fanoutClients, func(ws *websocket.Conn) {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"big"}`)); err != nil {
			b.Fatal(err)
		}
	})
	defer cc.close()
	ctx := context.Background()
	produce := func(i int) *kgo.Record {
		ev := &events.MessageSent{Envelope: events.Envelope{ID: fmt.Sprint("e", i), Room: "big", User: "bench", Time: int64(i)},
			MessageID: fmt.Sprint("m", i), Text: strings.Repeat("y", 100)}
		rec, err := kafka.NewRecord(st.codec, topic, ev)
		if err != nil {
			b.Fatal(err)
		}
		return rec
	}
	// Markers until every subscription is live (each client saw one).
	bases := make([]int64, fanoutClients)
	for marker, live, deadline := -1, false, time.Now().Add(time.Minute); !live; marker-- {
		if time.Now().After(deadline) {
			b.Fatal("the clients' subscriptions did not go live")
		}
		if err := st.cl.ProduceSync(ctx, produce(marker)).FirstErr(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		live = true
		for i := range cc.counts {
			live = live && cc.counts[i].Load() > 0
		}
	}
	time.Sleep(100 * time.Millisecond) // let the last marker land everywhere
	for i := range cc.counts {
		bases[i] = cc.counts[i].Load()
	}

	b.ResetTimer()
	start, cpu := time.Now(), testsvc.ProcessCPU(b)
	var perr atomic.Value
	tick := newPacer(pace)
	for i := range b.N {
		tick.wait()
		st.cl.Produce(ctx, produce(i), func(_ *kgo.Record, err error) {
			if err != nil {
				perr.Store(err)
			}
		})
	}
	cc.wait(b, bases, int64(b.N))
	gwElapsed, gwCPU := time.Since(start), testsvc.ProcessCPU(b)-cpu
	b.StopTimer()
	if err, _ := perr.Load().(error); err != nil {
		b.Fatal(err)
	}
	gwRate := float64(b.N*fanoutClients) / gwElapsed.Seconds()

	// Baseline: the same bytes, written by plain gorilla, one frame per
	// message per client, from one writer goroutine per connection.
	frame := []byte(`{"type":"message","room":"big","message_id":"m1","user":"bench","text":"` + strings.Repeat("y", 100) + `","ts":1,"partition":0,"offset":1}`)
	var (
		mu    sync.Mutex
		conns []*websocket.Conn
		ready = make(chan struct{})
		begin = make(chan struct{})
		srvWG sync.WaitGroup
	)
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, ws)
		if len(conns) == fanoutClients {
			close(ready)
		}
		mu.Unlock()
		srvWG.Go(func() {
			<-begin
			tick := newPacer(pace)
			for range b.N {
				tick.wait()
				if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					return
				}
			}
		})
	}))
	defer hs.Close()
	base := dialCounting(b, "ws"+strings.TrimPrefix(hs.URL, "http"), fanoutClients, nil)
	<-ready
	start, cpu = time.Now(), testsvc.ProcessCPU(b)
	close(begin)
	base.wait(b, nil, int64(b.N))
	baseElapsed, baseCPU := time.Since(start), testsvc.ProcessCPU(b)-cpu
	srvWG.Wait()
	base.close()
	baseRate := float64(b.N*fanoutClients) / baseElapsed.Seconds()

	b.ReportMetric(gwRate, "deliveries/s")
	b.ReportMetric(baseRate, "baseline-deliveries/s")
	b.ReportMetric(gwRate/baseRate, "ratio")
	// CPU of the whole process (the clients' readers too, alike in both
	// runs) per message delivered to one client.
	deliveries := float64(b.N * fanoutClients)
	b.ReportMetric(float64(gwCPU.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(float64(baseCPU.Nanoseconds())/deliveries, "baseline-cpu-ns/delivery")
}

// pacer spaces calls to wait by a period (0: no wait).
type pacer struct{ t *time.Ticker }

func newPacer(period time.Duration) pacer {
	if period <= 0 {
		return pacer{}
	}
	return pacer{time.NewTicker(period)}
}

func (p pacer) wait() {
	if p.t != nil {
		<-p.t.C
	}
}

// BenchmarkPipelinedSends measures a closed loop of sends over one
// WebSocket keeping window sends unanswered (each ack lets the next send
// go), against the embedded broker: acks per second and send → ack
// latency. A gateway that answers one action at a time per connection is
// bound by 1 / append latency here whatever the window.
func BenchmarkPipelinedSends(b *testing.B) {
	const window = 16
	_, ws := benchConn(b)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"bench","client_id":"j"}`)); err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("x", 100)
	sentAt := make([]atomic.Int64, b.N) // UnixNano; read by the reader goroutine
	latencies := make([]time.Duration, 0, b.N)
	slots := make(chan struct{}, window)
	readErr := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		ackPrefix := []byte(`"type":"ack","client_id":"c`)
		for acked := 0; acked < b.N; {
			_, data, err := ws.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			for _, line := range bytes.Split(data, []byte{'\n'}) {
				if bytes.Contains(line, []byte(`"type":"error"`)) {
					readErr <- fmt.Errorf("error frame: %s", line)
					return
				}
				i := bytes.Index(line, ackPrefix)
				if i < 0 {
					continue
				}
				rest := line[i+len(ackPrefix):]
				n, err := strconv.Atoi(string(rest[:bytes.IndexByte(rest, '"')]))
				if err != nil {
					readErr <- err
					return
				}
				latencies = append(latencies, time.Duration(time.Now().UnixNano()-sentAt[n].Load()))
				acked++
				<-slots
			}
		}
		readErr <- nil
	}()
	for i := range b.N {
		slots <- struct{}{}
		sentAt[i].Store(time.Now().UnixNano())
		msg := fmt.Appendf(nil, `{"type":"send","room":"bench","client_id":"c%d","text":%q}`, i, text)
		if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-readErr; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acks/s")
	b.ReportMetric(us(percentile(latencies, 0.50)), "ack-p50-µs")
	b.ReportMetric(us(percentile(latencies, 0.99)), "ack-p99-µs")
}
