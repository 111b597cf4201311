package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/retry"
)

func TestBackoffDoublesToMaxAndResets(t *testing.T) {
	b := retry.Backoff{Min: 50 * time.Millisecond, Max: 300 * time.Millisecond}
	want := []time.Duration{50, 100, 200, 300, 300}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("delay %d = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if b.Attempt() != len(want) {
		t.Fatalf("attempt = %d, want %d", b.Attempt(), len(want))
	}
	b.Reset()
	if got := b.Next(); got != 50*time.Millisecond {
		t.Fatalf("after reset = %v, want 50ms", got)
	}
}

func TestBackoffNeverOverflows(t *testing.T) {
	b := retry.Backoff{Min: time.Second, Max: 5 * time.Second}
	for range 100 {
		if d := b.Next(); d <= 0 || d > 5*time.Second {
			t.Fatalf("delay %v outside (0, 5s]", d)
		}
	}
}

func TestJitterStaysInHalfToFull(t *testing.T) {
	b := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for i := range 12 {
		full := min(100*time.Millisecond<<i, 5*time.Second)
		if d := b.Next(); d < full/2 || d > full {
			t.Fatalf("delay %d = %v, want within [%v, %v]", i+1, d, full/2, full)
		}
	}
}

func TestWaitEndsEarly(t *testing.T) {
	b := retry.Backoff{Min: time.Hour, Max: time.Hour}
	stop := make(chan struct{})
	close(stop)
	if b.Wait(context.Background(), stop) {
		t.Fatal("Wait returned true although stop was closed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Wait(ctx, nil) {
		t.Fatal("Wait returned true although ctx had ended")
	}
	if !retry.Sleep(context.Background(), nil, time.Millisecond) {
		t.Fatal("Sleep returned false although nothing stopped it")
	}
}
