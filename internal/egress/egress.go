package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// MaxURLBytes is the longest webhook URL accepted.
const MaxURLBytes = 2048

var (
	// ErrBadURL: a webhook URL is not http(s), has no host, carries
	// credentials, is too long, or names a private host. ValidateURL wraps it
	// with the detail.
	ErrBadURL = errors.New("invalid webhook url")
	// ErrPrivateTarget: a webhook target resolved to a loopback, private,
	// link-local or unspecified address and private targets are not allowed.
	// It is permanent: retrying dials the same address.
	ErrPrivateTarget = errors.New("webhook target is a loopback or private address (WEBHOOK_ALLOW_PRIVATE=false)")
)

// ValidateURL checks a webhook target: http or https, a host, at most
// MaxURLBytes, and unless allowPrivate, not a loopback, private, link-local
// or unspecified address (a webhook must not reach internal services). Names
// are checked as literals here; GuardDial checks the resolved address again
// at delivery time.
func ValidateURL(raw string, allowPrivate bool) error {
	if len(raw) > MaxURLBytes {
		return fmt.Errorf("%w: over %d bytes", ErrBadURL, MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadURL, err) //nolint:errorlint // the url error is detail, ErrBadURL is what callers branch on
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q, want http or https", ErrBadURL, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrBadURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the url; use the secret", ErrBadURL)
	}
	if !allowPrivate && isPrivateHost(host) {
		return fmt.Errorf("%w: %s is a loopback or private address (set WEBHOOK_ALLOW_PRIVATE=true to allow)", ErrBadURL, host)
	}
	return nil
}

// isPrivateHost reports whether host is "localhost" or an IP literal that is
// loopback, private, link-local, multicast or unspecified.
func isPrivateHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(strings.Trim(h, "[]"))
	if err != nil {
		return false
	}
	return isPrivateIP(net.IP(addr.AsSlice()))
}

// isPrivateIP reports whether ip must not be a webhook target.
func isPrivateIP(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()
}

// GuardDial is a net.Dialer Control function that refuses connections to
// private addresses with an error wrapping ErrPrivateTarget. It runs after
// DNS resolution, on the address actually dialled, so a public name that
// resolves to 10.0.0.1 (or is rebound to it) is refused too.
func GuardDial(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || isPrivateIP(ip) {
		return fmt.Errorf("dial %s %s: %w", network, address, ErrPrivateTarget)
	}
	return nil
}
