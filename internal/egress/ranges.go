package egress

import "net/netip"

// specialPurpose are the IANA special-purpose address blocks (the IPv4 and
// IPv6 Special-Purpose Address Registries, RFC 6890 and its updates) plus
// multicast and the reserved classes: none of them is a public host a
// webhook may name. Blocks the registry marks partly "globally reachable"
// (192.0.0.0/24, 2001::/23) are refused whole: no webhook needs them.
var specialPurpose = mustPrefixes(
	// IPv4
	"0.0.0.0/8",          // "this network"
	"10.0.0.0/8",         // private
	"100.64.0.0/10",      // shared address space (carrier-grade NAT)
	"127.0.0.0/8",        // loopback
	"169.254.0.0/16",     // link local (cloud metadata lives here)
	"172.16.0.0/12",      // private
	"192.0.0.0/24",       // IETF protocol assignments
	"192.0.2.0/24",       // documentation (TEST-NET-1)
	"192.31.196.0/24",    // AS112-v4
	"192.52.193.0/24",    // AMT
	"192.88.99.0/24",     // deprecated 6to4 relay anycast
	"192.168.0.0/16",     // private
	"192.175.48.0/24",    // direct delegation AS112
	"198.18.0.0/15",      // benchmarking
	"198.51.100.0/24",    // documentation (TEST-NET-2)
	"203.0.113.0/24",     // documentation (TEST-NET-3)
	"224.0.0.0/4",        // multicast
	"240.0.0.0/4",        // reserved
	"255.255.255.255/32", // limited broadcast
	// IPv6
	"::/96",          // unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
	"::ffff:0:0/96",  // IPv4-mapped: the IPv4 rules must not be dodged through it
	"64:ff9b::/96",   // NAT64 well-known prefix
	"64:ff9b:1::/48", // local-use NAT64
	"100::/64",       // discard-only
	"2001::/23",      // IETF protocol assignments (Teredo, ORCHID, …)
	"2001:db8::/32",  // documentation
	"2002::/16",      // 6to4: embeds an arbitrary IPv4 address
	"3fff::/20",      // documentation
	"5f00::/16",      // SRv6 SIDs
	"fc00::/7",       // unique local
	"fe80::/10",      // link local
	"fec0::/10",      // deprecated site local
	"ff00::/8",       // multicast
)

// globalUnicast6 is the IPv6 space IANA allocates for global unicast;
// anything outside it is not a public host today.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// IsGlobalUnicast reports whether a is a public unicast address: valid,
// without a zone, in no special-purpose block, and for IPv6 inside
// 2000::/3. Only such addresses may be webhook or NOTIFY_URL targets
// unless private targets are allowed.
func IsGlobalUnicast(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	if a.Is6() && !a.Is4In6() && !globalUnicast6.Contains(a) {
		return false
	}
	for _, p := range specialPurpose {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
