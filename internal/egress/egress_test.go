package egress_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rtstack/rtstack/internal/egress"
)

func TestWebhookURLs(t *testing.T) {
	tests := []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hooks.example.com/x", false, true},
		{"http://93.184.216.34/x", false, true},
		{"ftp://example.com/x", false, false},
		{"https:///nohost", false, false},
		{"http://127.0.0.1:9000/x", false, false},
		{"http://localhost/x", false, false},
		{"http://10.1.2.3/x", false, false},
		{"http://192.168.1.1/x", false, false},
		{"http://[::1]/x", false, false},
		{"http://169.254.169.254/latest", false, false},
		{"http://0.0.0.0/", false, false},
		{"http://127.0.0.1:9000/x", true, true},
		{"https://user:pw@example.com/", false, false},
		{"https://example.com/" + strings.Repeat("a", 2048), false, false},
	}
	for _, tt := range tests {
		err := egress.ValidateURL(tt.url, tt.allowPrivate)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateURL(%.40q, %v) = %v, want ok=%v", tt.url, tt.allowPrivate, err, tt.ok)
		}
		if err != nil && !errors.Is(err, egress.ErrBadURL) {
			t.Errorf("error %v does not wrap ErrBadURL", err)
		}
	}
}

func TestGuardDialRefusesPrivateAddresses(t *testing.T) {
	tests := []struct {
		address string
		ok      bool
	}{
		{"93.184.216.34:443", true},
		{"[2606:2800:220:1:248:1893:25c8:1946]:443", true},
		{"127.0.0.1:80", false},
		{"10.0.0.1:80", false},
		{"[::1]:80", false},
		{"169.254.169.254:80", false},
		{"0.0.0.0:80", false},
		{"not-an-ip:80", false},
	}
	for _, tt := range tests {
		err := egress.GuardDial("tcp", tt.address, nil)
		if (err == nil) != tt.ok {
			t.Errorf("GuardDial(%q) = %v, want ok=%v", tt.address, err, tt.ok)
		}
		if err != nil && !errors.Is(err, egress.ErrPrivateTarget) {
			t.Errorf("error %v does not wrap ErrPrivateTarget", err)
		}
	}
}
