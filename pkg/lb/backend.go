package lb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
)

// MaxWeight is the largest weight a Backend may have. It bounds the memory of
// the weighted hash rings (Ketama places 160 points per unit of weight).
const MaxWeight = 10000

// unixPrefix marks a Unix domain socket address, as in nginx's "unix:/path".
const unixPrefix = "unix:"

// Errors returned when a backend is malformed. They are wrapped with the
// offending value, so test with errors.Is.
var (
	ErrBadAddress = errors.New("bad backend address")
	ErrBadWeight  = errors.New("bad backend weight")
	ErrDuplicate  = errors.New("duplicate backend address")
)

// Backend is one upstream server.
//
// Its identity is Addr alone: two Backends with the same Addr are the same
// server, whatever their weights or metadata, so a weight change keeps the
// server's health and in-flight count.
type Backend struct {
	// Addr is the normalised address: "host:port", "[v6]:port", or
	// "unix:/path" for a Unix domain socket. Use NewBackend or
	// MustBackend to build one.
	Addr string
	// Weight is the relative share of traffic, 1 to MaxWeight.
	Weight int
	// Metadata carries user data (zone, labels, TLS names…). It does not
	// take part in identity or selection.
	Metadata map[string]string
	// Backup marks a backup server (HAProxy's and NGINX's "backup"): the
	// LoadBalancer selects it only when no primary backend is usable.
	// Static lists carry it; DNS backends are never backups.
	Backup bool
	// MaxConnections bounds the requests in flight to this backend when
	// the LoadBalancer has Options.Limits; 0 means Limits' default for
	// every backend. Static lists carry it.
	MaxConnections int

	// state is attached by the LoadBalancer to the backends of a snapshot;
	// it is shared by every snapshot that contains the same Addr.
	state *backendState
}

// NewBackend returns a Backend for addr with the given weight, or an error
// naming the bad value. See ParseAddr for the accepted address forms.
func NewBackend(addr string, weight int) (Backend, error) {
	norm, err := ParseAddr(addr)
	if err != nil {
		return Backend{}, err
	}
	if weight < 1 || weight > MaxWeight {
		return Backend{}, fmt.Errorf("%w: %d for %s: must be 1 to %d", ErrBadWeight, weight, addr, MaxWeight)
	}
	return Backend{Addr: norm, Weight: weight}, nil
}

// MustBackend is NewBackend for addresses known to be valid, as in tests
// and examples. It panics on a bad address or weight.
func MustBackend(addr string, weight int) Backend {
	b, err := NewBackend(addr, weight)
	if err != nil {
		panic(err)
	}
	return b
}

// maxAddrLen bounds a backend address: a bracketed IPv6 address with a
// zone, or a 253-byte DNS name, and a port, or "unix:" and a socket path
// (108 bytes on Linux), with room to spare.
const maxAddrLen = 512

// ParseAddr validates a backend address and returns its normalised form.
//
// Accepted: "host:port" where host is an IPv4 address, a bracketed IPv6
// address ("[2001:db8::1]:80") or a DNS name; "unix:/path" or "/path" for a
// Unix domain socket. IP addresses are written in canonical form, so
// "[2001:DB8::0001]:80" and "[2001:db8::1]:80" are the same backend.
func ParseAddr(addr string) (string, error) {
	if len(addr) > maxAddrLen {
		// Quoting it whole would make a hostile configuration's error
		// messages as large as its values, once per place they appear.
		return "", fmt.Errorf("%w: %s (%d bytes): longer than any host:port or unix:/path (%d bytes at most)",
			ErrBadAddress, strconv.Quote(addr[:32]+"…"), len(addr), maxAddrLen)
	}
	if strings.HasPrefix(addr, "/") {
		addr = unixPrefix + addr
	}
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		if !strings.HasPrefix(path, "/") || len(path) < 2 {
			return "", fmt.Errorf("%w: %q: a Unix socket path must be absolute", ErrBadAddress, addr)
		}
		return addr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: %q: want host:port, [ipv6]:port or unix:/path", ErrBadAddress, addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("%w: %q: port must be 1 to 65535", ErrBadAddress, addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" && !ip.Is6() {
			return "", fmt.Errorf("%w: %q: zone on a non-IPv6 address", ErrBadAddress, addr)
		}
		return net.JoinHostPort(ip.String(), strconv.FormatUint(p, 10)), nil
	}
	if !validHostname(host) {
		return "", fmt.Errorf("%w: %q: %q is neither an IP address nor a DNS name", ErrBadAddress, addr, host)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(p, 10)), nil
}

// validHostname reports whether h is a syntactically valid DNS name
// (RFC 1123 labels, underscores allowed for SRV-style names).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Network returns the network to dial the backend on: "unix" or "tcp".
func (b *Backend) Network() string {
	if strings.HasPrefix(b.Addr, unixPrefix) {
		return "unix"
	}
	return "tcp"
}

// DialAddr returns the address to pass to net.Dial with Network: the socket
// path for a Unix backend, host:port otherwise.
func (b *Backend) DialAddr() string {
	if path, ok := strings.CutPrefix(b.Addr, unixPrefix); ok {
		return path
	}
	return b.Addr
}

// HostPort splits the address into host (IPv6 without brackets) and port;
// a Unix backend has its socket path as host and no port.
func (b *Backend) HostPort() (host, port string) {
	if path, ok := strings.CutPrefix(b.Addr, unixPrefix); ok {
		return path, ""
	}
	host, port, err := net.SplitHostPort(b.Addr)
	if err != nil {
		return b.Addr, ""
	}
	return host, port
}

// String returns the address, the weight when it is not 1, and "backup"
// for a backup.
func (b *Backend) String() string {
	s := b.Addr
	if b.Weight != 1 {
		s += " weight=" + strconv.Itoa(b.Weight)
	}
	if b.Backup {
		s += " backup"
	}
	return s
}

// Acquire records the start of a request to b. Pair every Acquire with a
// Release; the LeastLoaded algorithm and the status report read the count.
// It is a no-op on a Backend that did not come from a LoadBalancer.
func (b *Backend) Acquire() {
	if b.state != nil {
		b.state.inflight.Add(1)
	}
}

// Release records the end of a request started with Acquire.
func (b *Backend) Release() {
	if b.state != nil {
		b.state.inflight.Add(-1)
	}
}

// InFlight returns the number of requests acquired and not yet released.
// It is 0 for a Backend that did not come from a LoadBalancer.
func (b *Backend) InFlight() int64 {
	if b.state == nil {
		return 0
	}
	return b.state.inflight.Load()
}

// Usable reports whether the backend may take traffic now: healthy and
// enabled, as Select requires. A Backend that did not come from a
// LoadBalancer is not usable.
func (b *Backend) Usable() bool { return b.state != nil && b.state.usable.Load() }

// Ext returns what Options.Attach returned when the backend's address
// joined its LoadBalancer: per-backend data of the caller's, such as its
// metrics. It is nil for a Backend that did not come from a LoadBalancer.
func (b *Backend) Ext() any {
	if b.state == nil {
		return nil
	}
	return b.state.ext
}

// SameAs reports whether o is the same backend as b, at the same weight,
// sharing the same LoadBalancer state: a cache keyed by address uses it to
// notice that a backend was reweighted, or removed and added again.
func (b *Backend) SameAs(o *Backend) bool {
	return b.Addr == o.Addr && b.Weight == o.Weight && b.state == o.state
}

// sameSelection reports whether two backend lists would build the same
// selector: the same addresses with the same weights in the same order.
func sameSelection(a, b []Backend) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Addr != b[i].Addr || a[i].Weight != b[i].Weight {
			return false
		}
	}
	return true
}

// validateSet checks a discovered backend list: valid addresses and weights,
// no duplicates. The error names the first offending value.
func validateSet(backends []Backend) error {
	seen := make(map[string]struct{}, len(backends))
	for i := range backends {
		b := &backends[i]
		norm, err := ParseAddr(b.Addr)
		if err != nil {
			return err
		}
		if norm != b.Addr {
			return fmt.Errorf("%w: %q is not normalised (want %q): build backends with NewBackend", ErrBadAddress, b.Addr, norm)
		}
		if b.Weight < 1 || b.Weight > MaxWeight {
			return fmt.Errorf("%w: %d for %s: must be 1 to %d", ErrBadWeight, b.Weight, b.Addr, MaxWeight)
		}
		if _, dup := seen[b.Addr]; dup {
			return fmt.Errorf("%w: %s", ErrDuplicate, b.Addr)
		}
		seen[b.Addr] = struct{}{}
	}
	return nil
}

// inflightCounter is split out so the hot counter does not share a cache
// line with the health bookkeeping written by the checker.
type inflightCounter struct {
	atomic.Int64
	_ [56]byte
}
