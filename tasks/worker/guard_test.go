package worker_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/egress"
	"github.com/rtstack/rtstack/tasks/worker"
)

// The dial-time guard refuses every special-purpose range on the address
// actually dialled, before a packet leaves (a Dialer Control function).
func TestDialGuardRefusesSpecialPurposeRanges(t *testing.T) {
	client := worker.NewHTTPClient(false)
	for _, host := range []string{
		"0.1.2.3", "10.0.0.1", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1",
		"192.0.0.8", "192.0.2.1", "192.168.0.1", "198.18.0.1", "203.0.113.9", "240.0.0.1",
		"[::1]", "[::127.0.0.1]", "[::ffff:10.0.0.1]", "[64:ff9b::a00:1]", "[2002:a00:1::1]",
		"[fec0::1]", "[fd00::1]", "[fe80::1]",
	} {
		t.Run(host, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+host+":80/hook", strings.NewReader("{}"))
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, egress.ErrPrivateTarget) {
				t.Errorf("POST to %s: %v, want ErrPrivateTarget", host, err)
			}
		})
	}
}

// The client ignores proxy settings of the environment: a proxy would dial
// on the client's behalf, past the guard.
func TestClientIgnoresProxyEnvironment(t *testing.T) {
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		t.Setenv(k, "http://93.184.216.34:3128")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://10.0.0.1/hook", strings.NewReader("{}"))
	resp, err := worker.NewHTTPClient(false).Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, egress.ErrPrivateTarget) {
		t.Fatalf("with a proxy in the environment: %v, want the guard's ErrPrivateTarget (no proxy used)", err)
	}
}
