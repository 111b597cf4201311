package egress_test

import (
	"net/netip"
	"testing"

	"github.com/rtstack/rtstack/internal/egress"
)

func TestIsGlobalUnicast(t *testing.T) {
	tests := []struct {
		addr   string
		global bool
	}{
		{"93.184.216.34", true},
		{"8.8.8.8", true},
		{"2606:2800:220:1:248:1893:25c8:1946", true},
		{"2a00:1450:4001::1", true},
		{"0.1.2.3", false},         // 0.0.0.0/8
		{"10.1.2.3", false},        // private
		{"100.64.0.1", false},      // shared address space
		{"100.127.255.254", false}, // its end
		{"127.0.0.1", false},
		{"169.254.169.254", false}, // metadata
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.1", false},   // IETF protocol assignments
		{"192.0.0.9", false},   // ditto, though the registry calls it global
		{"192.0.2.10", false},  // TEST-NET-1
		{"192.88.99.1", false}, // 6to4 relay
		{"192.168.1.1", false},
		{"198.18.0.1", false}, // benchmarking
		{"198.19.255.255", false},
		{"198.51.100.1", false},
		{"203.0.113.1", false},
		{"224.0.0.1", false}, // multicast
		{"240.0.0.1", false}, // reserved
		{"255.255.255.255", false},
		{"::", false},
		{"::1", false},
		{"::10.0.0.1", false},      // IPv4-compatible
		{"::8.8.8.8", false},       // IPv4-compatible, whatever it embeds
		{"::ffff:10.0.0.1", false}, // IPv4-mapped
		{"::ffff:8.8.8.8", false},  // IPv4-mapped, whatever it embeds
		{"64:ff9b::a00:1", false},  // NAT64
		{"64:ff9b:1::1", false},
		{"100::1", false},
		{"2001::1", false},       // Teredo
		{"2001:db8::1", false},   // documentation
		{"2002:a00:1::1", false}, // 6to4
		{"3fff::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fec0::1", false}, // site local
		{"ff02::1", false},
		{"4000::1", false}, // outside 2000::/3
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			if got := egress.IsGlobalUnicast(a); got != tt.global {
				t.Errorf("IsGlobalUnicast(%s) = %v, want %v", tt.addr, got, tt.global)
			}
		})
	}
	if egress.IsGlobalUnicast(netip.Addr{}) {
		t.Error("the zero Addr counts as global")
	}
}
