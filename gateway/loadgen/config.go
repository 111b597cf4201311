package loadgen

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Config describes one load run. Zero values mean the defaults given.
type Config struct {
	// URL is the WebSocket endpoint, e.g. ws://127.0.0.1:8080/ws. Required.
	URL string
	// Token returns the token client user connects with (sent as ?token=);
	// nil connects without one.
	Token func(user string) (string, error)
	// Clients is how many connections are opened. Default 100.
	Clients int
	// Rooms is how many rooms the clients are spread over, round robin
	// (client i joins room i mod Rooms). Default 1.
	Rooms int
	// Senders is how many of the clients send (the first Senders, so they
	// are spread over the rooms too); 0 holds idle connections for Duration.
	Senders int
	// Rate is the target of messages per second over all senders (open
	// loop: sends are scheduled whatever the answers, and latency counts
	// from the scheduled time). Exactly one of Rate and Window is set when
	// Senders > 0.
	Rate float64
	// Window is how many messages each sender keeps unanswered (closed
	// loop: the next is sent when an ack or error answers one).
	Window int
	// Duration is how long messages are sent (or idle clients held).
	// Default 10s.
	Duration time.Duration
	// Drain is how long, after sending stops, the run waits for the last
	// acks and deliveries. Default 10s.
	Drain time.Duration
	// TextBytes is the length of each message's text (at least the 20
	// bytes of its timestamp). Default 100.
	TextBytes int
	// RunID prefixes the run's room and user names, so a run never meets
	// the state of an earlier one. Default: derived from the start time.
	RunID string
	// DialConcurrency bounds the connections being opened and joined at
	// once. Default 64.
	DialConcurrency int
	// Progress receives a line per ProgressInterval while the run goes; nil
	// prints nothing. With ProgressTTY the line is rewritten in place.
	Progress         io.Writer
	ProgressTTY      bool
	ProgressInterval time.Duration // default 1s
	// Ready, if set, is called once every client has joined, just before
	// sending starts (a caller measuring the server's memory per idle
	// connection reads it then).
	Ready func()
}

const minTextBytes = 20 // the send timestamp and its separator

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("loadgen: URL is required"))
	}
	for name, v := range map[string]int{"Clients": c.Clients, "Rooms": c.Rooms, "Senders": c.Senders,
		"Window": c.Window, "TextBytes": c.TextBytes, "DialConcurrency": c.DialConcurrency} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("loadgen: %s is negative (%d)", name, v))
		}
	}
	for name, d := range map[string]time.Duration{"Duration": c.Duration, "Drain": c.Drain, "ProgressInterval": c.ProgressInterval} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("loadgen: %s is negative (%v)", name, d))
		}
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("loadgen: Rate is negative (%v)", c.Rate))
	}
	eff := c // the counts as the run will use them
	eff.setDefaults()
	clients, rooms := eff.Clients, eff.Rooms
	if rooms > clients {
		errs = append(errs, fmt.Errorf("loadgen: %d rooms for %d clients: every room needs a client", rooms, clients))
	}
	if c.Senders > clients {
		errs = append(errs, fmt.Errorf("loadgen: %d senders but only %d clients", c.Senders, clients))
	}
	if c.Senders > 0 && (c.Rate > 0) == (c.Window > 0) {
		errs = append(errs, errors.New("loadgen: senders need exactly one of Rate (open loop) or Window (closed loop)"))
	}
	if c.TextBytes > 0 && c.TextBytes < minTextBytes {
		errs = append(errs, fmt.Errorf("loadgen: TextBytes %d is under %d", c.TextBytes, minTextBytes))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	c.Clients = cmp.Or(c.Clients, 100)
	c.Rooms = cmp.Or(c.Rooms, 1)
	c.TextBytes = cmp.Or(c.TextBytes, 100)
	c.DialConcurrency = cmp.Or(c.DialConcurrency, 64)
	c.Duration = cmp.Or(c.Duration, 10*time.Second)
	c.Drain = cmp.Or(c.Drain, 10*time.Second)
	c.ProgressInterval = cmp.Or(c.ProgressInterval, time.Second)
	if c.RunID == "" {
		c.RunID = "load" + strconv.FormatInt(time.Now().UnixMilli()%1e9, 36)
	}
}

// mode names the kind of run for the report.
func (c *Config) mode() string {
	switch {
	case c.Senders == 0:
		return "idle"
	case c.Window > 0:
		return "closed"
	default:
		return "open"
	}
}

func (c *Config) room(i int) string { return c.RunID + "-r" + strconv.Itoa(i%c.Rooms) }
func (c *Config) user(i int) string { return c.RunID + "-u" + strconv.Itoa(i) }
