package dataplane

import "fmt"

// Forwarding is how a service's packets reach its backends.
type Forwarding uint8

// The forwarding modes, as service.forwarding in bpf/weir.h holds them.
const (
	// ForwardingNAT rewrites destination and source (full NAT): the backend
	// answers the balancer, which translates the reply back. Backends need
	// no set-up; they see the SNAT address, not the client's.
	ForwardingNAT Forwarding = 0
	// ForwardingDSRIPIP is direct server return: the client's packet goes
	// unchanged to the backend inside an outer IP header of its family
	// (IPv4 in IPv4, IPv6 in IPv6) from Service.SNAT to the backend. The
	// backend decapsulates it, holds the VIP on its loopback and answers
	// the client directly; it sees the client's address. No SNAT port is
	// taken, and the backend's port must be the VIP's.
	ForwardingDSRIPIP Forwarding = 1
	// ForwardingDSRGUE is direct server return through routers: the
	// client's packet goes unchanged to the backend as the payload of a UDP
	// datagram (GUE version 1, "direct IP": no GUE header) from Service.SNAT
	// to the backend's Service.GUEPort, in IPv4 for an IPv4 VIP and IPv6
	// for an IPv6 one. The UDP source port is a hash of the client's flow,
	// in 49152-65535, so that routers balancing by ports keep a flow on one
	// path; the UDP checksum is zero. The backend's fou port (ip fou add
	// port P gue) hands the payload to its ipip or ip6tnl device, and the
	// rest is as with ForwardingDSRIPIP.
	ForwardingDSRGUE Forwarding = 2
)

// DefaultGUEPort is the UDP port GUE-encapsulated packets are sent to when
// Service.GUEPort is zero: 6080, Katran's, so that backends set up for it
// need no change.
const DefaultGUEPort uint16 = 6080

// String names f as the configuration does: "nat", "dsr ipip", "dsr gue".
func (f Forwarding) String() string {
	switch f {
	case ForwardingNAT:
		return "nat"
	case ForwardingDSRIPIP:
		return "dsr ipip"
	case ForwardingDSRGUE:
		return "dsr gue"
	}
	return fmt.Sprintf("forwarding(%d)", uint8(f))
}

// IsDSR reports whether f is a direct server return mode.
func (f Forwarding) IsDSR() bool { return f == ForwardingDSRIPIP || f == ForwardingDSRGUE }

func (f Forwarding) valid() bool { return f == ForwardingNAT || f.IsDSR() }
