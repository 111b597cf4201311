package main

import (
	"testing"

	"golang.org/x/time/rate"
)

// RATE_LIMIT=0 means unlimited; the gateway's own zero would mean its
// default of 50.
func TestRateLimit(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want rate.Limit
	}{{0, rate.Inf}, {50, 50}, {2.5, 2.5}} {
		c := config{RateLimit: tc.in}
		if got := c.rateLimit(); got != tc.want {
			t.Errorf("RATE_LIMIT=%v: %v, want %v", tc.in, got, tc.want)
		}
	}
	if err := (&config{RateLimit: -1, Partitions: 1, Topic: "t", BrokerAddr: "b"}).validate(false); err == nil {
		t.Error("a negative RATE_LIMIT was accepted")
	}
}
