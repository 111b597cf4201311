package api_test

import (
	"testing"

	"github.com/rtstack/rtstack/gateway/api"
)

// FuzzParsePosition: ?after= is outside input. Whatever it is, parsing never
// panics, and what parses is non-negative and survives a round trip.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0:0", "3:17", "", ":", "1:", "-1:2", "2147483647:9223372036854775807", "2147483648:0", "0:1:2", " 1:2", "+1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := api.ParsePosition(s)
		if err != nil {
			return
		}
		if p.Partition < 0 || p.Offset < 0 {
			t.Fatalf("ParsePosition(%q) = %v: negative", s, p)
		}
		q, err := api.ParsePosition(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip of %q: %v -> %v, %v", s, p, q, err)
		}
	})
}
