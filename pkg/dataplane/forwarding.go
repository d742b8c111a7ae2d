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
)

// String names f as the configuration does: "nat", "dsr ipip".
func (f Forwarding) String() string {
	switch f {
	case ForwardingNAT:
		return "nat"
	case ForwardingDSRIPIP:
		return "dsr ipip"
	}
	return fmt.Sprintf("forwarding(%d)", uint8(f))
}

// IsDSR reports whether f is a direct server return mode.
func (f Forwarding) IsDSR() bool { return f == ForwardingDSRIPIP }

func (f Forwarding) valid() bool { return f == ForwardingNAT || f == ForwardingDSRIPIP }
