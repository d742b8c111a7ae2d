package config

import (
	"fmt"
	"net/netip"
)

// Forwarding is how the BPF data plane sends an l4 service's packets to
// its backends (key forwarding of an l4 service).
type Forwarding string

// The forwarding modes.
const (
	// ForwardingNAT rewrites each packet's destination to the backend and
	// its source to the SNAT address, and the replies back: backends need
	// no set-up but see the balancer, not the client. The default.
	ForwardingNAT Forwarding = "nat"
	// ForwardingDSR is direct server return: the client's packet reaches
	// the backend unchanged inside a tunnel header (key encap); the
	// backend holds the VIP, sees the client's address and answers the
	// client directly.
	ForwardingDSR Forwarding = "dsr"
)

// Encap is the tunnel a DSR service's packets travel to the backends in
// (key encap).
type Encap string

// The tunnels of direct server return.
const (
	// EncapIPIP is IP in IP of the VIP's family: IPv4 in IPv4 (protocol 4,
	// the backend's ipip device) or IPv6 in IPv6 (next header 41, its
	// ip6tnl device).
	EncapIPIP Encap = "ipip"
	// EncapGUE is Generic UDP Encapsulation, for backends behind routers:
	// the client's packet as the payload of a UDP datagram to the
	// backend's port GUEPort, in IPv4 or IPv6 as the VIP (GUE version 1,
	// which the backend's fou port hands to its ipip or ip6tnl device).
	EncapGUE Encap = "gue"
)

// DefaultGUEPort is gue_port when encap: gue does not give it: 6080,
// Katran's, so that backends set up for it need no change.
const DefaultGUEPort = 6080

// l4Forwarding reads an l4 service's forwarding, encap and gue_port keys.
// It runs after l4SNAT: DSR takes the SNAT address as the tunnel's source
// but no ports.
func (p *parser) l4Forwarding(m *mapping, l *L4) {
	l.Forwarding = ForwardingNAT
	enumField(m, "forwarding", &l.Forwarding, ForwardingNAT, ForwardingDSR)
	if l.Forwarding != ForwardingDSR {
		if m.has("encap") {
			m.forbid("encap", "encap says how direct server return reaches the backends; it needs forwarding: dsr; remove encap, or set forwarding: dsr")
		}
		if m.has("gue_port") {
			m.forbid("gue_port", "gue_port is the UDP port of encap: gue, which needs forwarding: dsr; remove gue_port, or set forwarding: dsr and encap: gue")
		}
		return
	}
	if !m.has("encap") {
		m.missing("encap", "say how packets reach the backends with forwarding: dsr: encap: ipip, or encap: gue through routers")
	} else {
		enumField(m, "encap", &l.Encap, EncapIPIP, EncapGUE)
	}
	if l.Encap == EncapGUE {
		l.GUEPort = DefaultGUEPort
		m.integer("gue_port", &l.GUEPort, 1, 65535)
	} else if m.has("gue_port") && l.Encap != "" {
		m.forbid("gue_port", "gue_port is the UDP port of encap: gue, and this service has encap: "+string(l.Encap)+"; remove gue_port, or set encap: gue")
	}
	if l.Dataplane != DataplaneBPF {
		p.errorf(m.get("forwarding"), m.at("forwarding"), "direct server return needs the bpf data plane, which alone can encapsulate packets (the userspace one, which dataplane: %s may fall back to, proxies connections); set dataplane: bpf", l.Dataplane)
	}
	if n := m.get("snat"); n != nil && !l.SNAT.Ports.IsZero() {
		p.errorf(valueOf(n, "ports"), m.at("snat")+".ports", "forwarding: dsr translates no ports, so it takes none; remove snat.ports (snat.address is the tunnel's source)")
	}
}

// checkDSRBackends checks an l4 DSR service's static backends: the packet
// arrives unchanged, so a backend must be of the VIP's IP version (the
// tunnel is IPv4 in IPv4 or IPv6 in IPv6) and listen on the VIP's port.
func (p *parser) checkDSRBackends(l *L4, u *Upstream, path string) {
	if l == nil || u == nil || l.Forwarding != ForwardingDSR {
		return
	}
	vip, err := netip.ParseAddrPort(l.VIP)
	if err != nil {
		return // reported with the vip
	}
	for i, b := range u.Backends {
		ap, err := netip.ParseAddrPort(b.Addr)
		if err != nil {
			continue // a host name: checked once resolved, by the data plane
		}
		at := fmt.Sprintf("%s.backends[%d]", path, i)
		switch {
		case ap.Addr().Unmap().Is4() != vip.Addr().Unmap().Is4():
			p.errorAt(b.Pos, at, "%s and the vip %s are of different IP versions; direct server return tunnels IPv4 in IPv4 and IPv6 in IPv6, so give an %s backend",
				b.Addr, l.VIP, family(vip.Addr()))
		case ap.Port() != vip.Port():
			p.errorAt(b.Pos, at, "%s: with forwarding: dsr the backend gets the client's packet unchanged, addressed to the vip's port %d; give port %d (and have the backend listen on the vip)",
				b.Addr, vip.Port(), vip.Port())
		}
	}
}
