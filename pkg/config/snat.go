package config

import (
	"fmt"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weir-lb/weir/pkg/dataplane"
)

// SNAT is the source the BPF data plane gives an l4 service's packets
// towards its backends (key snat of an l4 service, and bpf.snat for every
// l4 service). The userspace data plane connects from the kernel's own
// source address and ephemeral ports, so SNAT does not apply to it.
type SNAT struct {
	// Pos is where the snat mapping is written; zero when the service has
	// none and takes bpf.snat's values or the defaults.
	Pos Position
	// Address is the SNAT address (key address); the zero Addr means the
	// source the kernel picks towards the service's first backend. In
	// bpf.snat it applies to the l4 services of its family only.
	Address netip.Addr
	// Ports are the source ports new flows get on Address (key ports,
	// "FIRST-LAST", default dataplane.DefaultSNATPorts, 61000-65535).
	// At start weir refuses a range the kernel may also pick ports from
	// for the host's own connections on that address.
	Ports dataplane.PortRange
}

// snatKeys are the keys of a snat mapping.
var snatKeys = []string{"address", "ports"}

// snat reads a snat mapping at path.
func (p *parser) snat(n *yaml.Node, path string) SNAT {
	s := SNAT{Pos: p.pos(n)}
	m := p.mapping(n, path, snatKeys)
	if m == nil {
		return s
	}
	var addr string
	if m.nonEmpty("address", &addr) {
		a, err := netip.ParseAddr(addr)
		switch {
		case err != nil:
			p.errorf(m.get("address"), m.at("address"), "%s is not an IP address; give the address backends see connections come from, as in address: 203.0.113.1", quote(addr))
		case a.Unmap().IsUnspecified() || a.Unmap().IsMulticast() || a.Zone() != "":
			p.errorf(m.get("address"), m.at("address"), "%s cannot be a source address; give a unicast address without a zone", quote(addr))
		default:
			s.Address = a.Unmap()
		}
	}
	if pn := m.get("ports"); pn != nil {
		s.Ports = p.portRange(pn, m.at("ports"))
	}
	return s
}

// portRange reads a port range: "FIRST-LAST", or one port.
func (p *parser) portRange(n *yaml.Node, path string) dataplane.PortRange {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != tagStr && n.ShortTag() != tagInt) {
		p.wrongType(n, path, `a port range, as in "61000-65535"`)
		return dataplane.PortRange{}
	}
	r, err := dataplane.ParsePortRange(n.Value)
	if err != nil {
		// The reason without the sentinel's words, which the path says.
		p.errorf(n, path, "%s", strings.TrimPrefix(err.Error(), dataplane.ErrInvalidPortRange.Error()+" "))
		return dataplane.PortRange{}
	}
	return r
}

// l4SNAT reads an l4 service's snat key, which only the BPF data plane
// uses.
func (p *parser) l4SNAT(m *mapping, l *L4) {
	n := m.get("snat")
	if n == nil {
		return
	}
	if l.Dataplane == DataplaneUserspace {
		m.forbid("snat", "the userspace data plane connects to backends from the kernel's own address and ephemeral ports; "+
			"snat applies to the bpf data plane only; remove snat, or set dataplane: bpf")
		return
	}
	l.SNAT = p.snat(n, m.at("snat"))
	vip, err := netip.ParseAddrPort(l.VIP)
	if a := l.SNAT.Address; err == nil && a.IsValid() && a.Is4() != vip.Addr().Unmap().Is4() {
		p.errorf(valueOf(n, "address"), m.at("snat")+".address", "%s and the vip %s are of different IP versions; give an %s SNAT address",
			a, l.VIP, family(vip.Addr()))
	}
}

// valueOf is the value of key in mapping n, or n itself when it has none.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

func family(a netip.Addr) string {
	if a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// resolveSNAT fills in every l4 service's SNAT from bpf.snat and the
// defaults: what the service leaves out, bpf.snat gives (its address to
// services of its family only), and the ports default to
// dataplane.DefaultSNATPorts.
func resolveSNAT(cfg *Config) {
	def := cfg.BPF.SNAT
	for i := range cfg.Services {
		l := cfg.Services[i].L4
		if l == nil || l.Dataplane == DataplaneUserspace {
			continue
		}
		vip, err := netip.ParseAddrPort(l.VIP)
		if !l.SNAT.Address.IsValid() && def.Address.IsValid() && err == nil && def.Address.Is4() == vip.Addr().Unmap().Is4() {
			l.SNAT.Address = def.Address
		}
		if l.Forwarding == ForwardingDSR {
			continue // no ports: nothing is translated
		}
		if l.SNAT.Ports.IsZero() {
			l.SNAT.Ports = def.Ports
		}
		if l.SNAT.Ports.IsZero() {
			l.SNAT.Ports = dataplane.DefaultSNATPorts
		}
	}
}

// String describes s as a log line would: "203.0.113.1 ports 61000-65535".
func (s SNAT) String() string {
	addr := "the kernel's source towards the first backend"
	if s.Address.IsValid() {
		addr = s.Address.String()
	}
	return fmt.Sprintf("%s ports %s", addr, s.Ports)
}
