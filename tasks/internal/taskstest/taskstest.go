// Package taskstest holds the helpers of the tasks tests: a RabbitMQ
// topology under a unique prefix that is deleted afterwards, and a webhook
// target that records what it receives. The cuttable TCP proxy is
// testsvc.Proxy.
package taskstest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

var seq atomic.Int64

// Keyring is the tests' keyring. Its key is fixed, so helper processes
// (a test binary run again) open what the test sealed.
var Keyring = func() *keyring.Keyring {
	key := sha256.Sum256([]byte("rtstack tasks tests"))
	kr, err := keyring.Parse("test:" + base64.StdEncoding.EncodeToString(key[:]))
	if err != nil {
		panic(err) // a well-formed spec always parses
	}
	return kr
}()

// Rabbit returns a rabbit.Config under a prefix unique to t with the given
// retry delays, whose queues are deleted when t ends.
func Rabbit(t testing.TB, delays ...time.Duration) rabbit.Config {
	t.Helper()
	url := testsvc.Rabbit(t)
	cfg := rabbit.Config{
		URL:         url,
		Prefix:      fmt.Sprintf("test.%d.%d.", time.Now().UnixNano(), seq.Add(1)),
		RetryDelays: delays,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rabbit.Setup(ctx, cfg); err != nil {
		t.Fatalf("declare topology: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := rabbit.Dial(ctx, url)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		if err := cfg.Topology().Delete(ch); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return cfg
}

// Request is one request a Target received.
type Request struct {
	Delivery  string
	Signature string
	Body      []byte
}

// Target is a webhook receiver on loopback. Respond decides each answer
// (nil: 200); it is called with the request's 1-based index among those
// of its delivery id.
type Target struct {
	*httptest.Server
	mu       sync.Mutex // guards reqs, per
	reqs     []Request
	per      map[string]int // requests per delivery id
	Respond  func(r *http.Request, attempt int) int
	respondM sync.Mutex // guards Respond's replacement between phases
}

// NewTarget starts a Target closed when t ends.
func NewTarget(t testing.TB, respond func(r *http.Request, attempt int) int) *Target {
	tg := &Target{Respond: respond, per: map[string]int{}}
	tg.Server = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(tg.Close)
	return tg
}

// SetRespond replaces the answer function.
func (tg *Target) SetRespond(f func(r *http.Request, attempt int) int) {
	tg.respondM.Lock()
	tg.Respond = f
	tg.respondM.Unlock()
}

func (tg *Target) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := Request{Delivery: r.Header.Get(tasks.HeaderDelivery), Signature: r.Header.Get(tasks.HeaderSignature), Body: body}
	tg.mu.Lock()
	tg.reqs = append(tg.reqs, req)
	tg.per[req.Delivery]++
	n := tg.per[req.Delivery]
	tg.mu.Unlock()
	tg.respondM.Lock()
	f := tg.Respond
	tg.respondM.Unlock()
	code := http.StatusOK
	if f != nil {
		code = f(r, n)
	}
	w.WriteHeader(code)
}

// Requests returns a copy of what the target received, in order.
func (tg *Target) Requests() []Request {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]Request(nil), tg.reqs...)
}

// Count is how many requests arrived.
func (tg *Target) Count() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.reqs)
}

// Distinct is how many distinct delivery ids arrived.
func (tg *Target) Distinct() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.per)
}
