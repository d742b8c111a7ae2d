package proxyproto

import (
	"net/netip"
	"time"
)

// DefaultTimeout is how long a server waits for the header of a trusted
// connection when its Policy says 0.
const DefaultTimeout = 5 * time.Second

// Policy says which connections a server expects a PROXY protocol header
// from. A header is only believed from a trusted source: anyone else
// could claim any address with one.
type Policy struct {
	// Trusted lists the networks of the balancers in front. A connection
	// from one of them must begin with a header; one from elsewhere is
	// read as if the server had no Policy.
	Trusted []netip.Prefix
	// Timeout bounds reading the header; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Trusts reports whether a connection from addr must carry a header.
// IPv4-mapped IPv6 addresses match IPv4 prefixes.
func (p *Policy) Trusts(addr netip.Addr) bool {
	if p == nil {
		return false
	}
	addr = addr.Unmap()
	for _, pre := range p.Trusted {
		if pre.Contains(addr) {
			return true
		}
	}
	return false
}

// HeaderTimeout returns Timeout, or DefaultTimeout when it is 0.
func (p *Policy) HeaderTimeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultTimeout
}
