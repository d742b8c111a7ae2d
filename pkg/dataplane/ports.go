package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of ports, First to Last, as
// "61000-65535" writes it. The zero PortRange is empty.
type PortRange struct {
	First, Last uint16
}

// DefaultSNATPorts are the source ports a service's new flows get on its
// SNAT address unless it says otherwise: the ports above Linux's default
// ip_local_port_range (32768-60999), so that on a kernel left at its
// defaults the balancer host's own connections never pick a port a NATed
// flow holds. Below 32768 live the ports services listen on (databases,
// 8080, Kubernetes NodePorts 30000-32767); above 61000 hardly anything
// does, since IANA leaves 49152-65535 unassigned. 4536 ports bound the
// concurrent flows per SNAT address and backend; a dedicated SNAT address
// can use a wider range (see bpf/README.md).
var DefaultSNATPorts = PortRange{First: 61000, Last: 65535}

// ErrInvalidPortRange reports a port range that is malformed or empty.
var ErrInvalidPortRange = errors.New("invalid port range")

// ParsePortRange parses "FIRST-LAST" (or one port, "PORT"), ports 1 to
// 65535 with FIRST at most LAST. Space around the numbers is allowed, and
// so is a tab or space instead of the dash, the form
// /proc/sys/net/ipv4/ip_local_port_range uses.
func ParsePortRange(s string) (PortRange, error) {
	first, last, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		fields := strings.Fields(s)
		switch len(fields) {
		case 1:
			first, last = fields[0], fields[0]
		case 2:
			first, last = fields[0], fields[1]
		default:
			return PortRange{}, fmt.Errorf("%w %q: want FIRST-LAST, as in \"61000-65535\"", ErrInvalidPortRange, s)
		}
	}
	lo, err1 := parsePort(first)
	hi, err2 := parsePort(last)
	if err := errors.Join(err1, err2); err != nil {
		return PortRange{}, fmt.Errorf("%w %q: %v", ErrInvalidPortRange, s, err)
	}
	if lo > hi {
		return PortRange{}, fmt.Errorf("%w %q: the first port is above the last; write the lower one first", ErrInvalidPortRange, s)
	}
	return PortRange{First: lo, Last: hi}, nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return uint16(n), nil
}

// String writes r as ParsePortRange reads it: "61000-65535".
func (r PortRange) String() string {
	if r.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// IsZero reports whether r is the zero, empty PortRange.
func (r PortRange) IsZero() bool { return r == PortRange{} }

// Len is the number of ports in r.
func (r PortRange) Len() int {
	if r.IsZero() {
		return 0
	}
	return int(r.Last) - int(r.First) + 1
}

// Contains reports whether port is in r.
func (r PortRange) Contains(port uint16) bool {
	return !r.IsZero() && r.First <= port && port <= r.Last
}

// Overlap is the range of ports both r and o hold; zero when none.
func (r PortRange) Overlap(o PortRange) PortRange {
	if r.IsZero() || o.IsZero() {
		return PortRange{}
	}
	lo, hi := max(r.First, o.First), min(r.Last, o.Last)
	if lo > hi {
		return PortRange{}
	}
	return PortRange{First: lo, Last: hi}
}

// valid reports whether r can be a service's SNAT ports: non-empty, no
// port 0.
func (r PortRange) valid() bool { return r.First != 0 && r.First <= r.Last }

// hull is the smallest range holding r and o.
func (r PortRange) hull(o PortRange) PortRange {
	switch {
	case r.IsZero():
		return o
	case o.IsZero():
		return r
	}
	return PortRange{First: min(r.First, o.First), Last: max(r.Last, o.Last)}
}

// ErrSNATPortsInUse reports SNAT ports that the kernel may also give to
// the balancer host's own connections from the same address.
var ErrSNATPortsInUse = errors.New("dataplane: SNAT ports overlap the kernel's ephemeral ports")

// Ephemeral is what the kernel of a network namespace hands out as source
// ports to connections that do not bind one:
// net.ipv4.ip_local_port_range (IPv6 too), minus
// net.ipv4.ip_local_reserved_ports.
type Ephemeral struct {
	// Range is ip_local_port_range.
	Range PortRange
	// Reserved are ip_local_reserved_ports, which the kernel never picks.
	Reserved []PortRange
}

// free reports whether the kernel never picks any port of r.
func (e Ephemeral) free(r PortRange) bool {
	ov := r.Overlap(e.Range)
	for port := int(ov.First); !ov.IsZero() && port <= int(ov.Last); port++ {
		if !e.reserved(uint16(port)) {
			return false
		}
	}
	return true
}

func (e Ephemeral) reserved(port uint16) bool {
	for _, r := range e.Reserved {
		if r.Contains(port) {
			return true
		}
	}
	return false
}

// CheckSNATPorts decides whether a service may take SNAT ports from ports
// on addr, given the kernel's ephemeral ports and whether addr is local
// (assigned to an interface of the balancer's network namespace, or
// bindable by any socket there through ip_nonlocal_bind). It may,
// unless addr is local and the kernel may pick a port of ports for a
// connection of its own: the connection and a NATed flow to the same
// backend would then share a 5-tuple, and the program would take the
// connection's replies. An address that is not local is safe whatever
// the range: the kernel never chooses it as a source, and no socket can
// bind it without IP_FREEBIND, IP_TRANSPARENT or net.ipv4.ip_nonlocal_bind.
// An invalid addr stands for the address the kernel picks towards the
// backends (local, then). The error gives both ranges and the ways out.
func CheckSNATPorts(addr netip.Addr, ports PortRange, eph Ephemeral, local bool) error {
	if !local || eph.free(ports) {
		return nil
	}
	narrow := "narrow the kernel's range to ports outside " + ports.String()
	if r := narrowed(eph.Range, ports); !r.IsZero() {
		narrow = fmt.Sprintf("narrow the kernel's range (sysctl -w net.ipv4.ip_local_port_range=\"%d %d\")", r.First, r.Last)
	}
	where := addr.String() + ", an address this host's sockets may use,"
	if !addr.IsValid() {
		where = "the address the kernel picks towards the backends"
	}
	return fmt.Errorf("%w: %s on %s and its ip_local_port_range %s share %s, "+
		"so the host's own connections could take ports NATed flows hold; "+
		"%s, reserve the SNAT ports (sysctl -w net.ipv4.ip_local_reserved_ports=%s), "+
		"or give the service a dedicated SNAT address, routed to the balancer but not assigned to it",
		ErrSNATPortsInUse, ports, where, eph.Range, ports.Overlap(eph.Range), narrow, ports)
}

// narrowed proposes an ip_local_port_range: the larger part of eph
// outside ports, zero when none is left.
func narrowed(eph, ports PortRange) PortRange {
	var below, above PortRange
	if eph.First < ports.First {
		below = PortRange{First: eph.First, Last: min(eph.Last, ports.First-1)}
	}
	if eph.Last > ports.Last {
		above = PortRange{First: max(eph.First, ports.Last+1), Last: eph.Last}
	}
	if below.Len() >= above.Len() {
		return below
	}
	return above
}
