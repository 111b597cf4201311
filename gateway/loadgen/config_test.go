package loadgen

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // a fragment of the error; empty: valid
	}{
		{"closed loop", Config{URL: "ws://x/ws", Senders: 10, Window: 16}, ""},
		{"open loop", Config{URL: "ws://x/ws", Senders: 1, Rate: 200}, ""},
		{"idle", Config{URL: "ws://x/ws", Clients: 10, Rooms: 10}, ""},
		{"no url", Config{}, "URL is required"},
		{"both modes", Config{URL: "u", Senders: 1, Rate: 1, Window: 1}, "exactly one of Rate"},
		{"no mode", Config{URL: "u", Senders: 1}, "exactly one of Rate"},
		{"rooms over clients", Config{URL: "u", Clients: 2, Rooms: 3}, "every room needs a client"},
		{"senders over clients", Config{URL: "u", Clients: 2, Senders: 3, Window: 1}, "only 2 clients"},
		{"negative", Config{URL: "u", Clients: -1, Rate: -1}, "Clients is negative"},
		{"short text", Config{URL: "u", TextBytes: 5}, "under 20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestNamesAndMode(t *testing.T) {
	c := Config{Clients: 5, Rooms: 2, Senders: 1, Rate: 3}
	c.setDefaults()
	if c.room(3) != c.RunID+"-r1" || c.user(3) != c.RunID+"-u3" || c.mode() != "open" {
		t.Errorf("room %q user %q mode %q", c.room(3), c.user(3), c.mode())
	}
}
