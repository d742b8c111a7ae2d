package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weir-lb/weir/pkg/bgp"
)

// BGP is the BGP speaker that announces the VIPs of the l4 services with
// announce (key bgp).
type BGP struct {
	// Pos is where the bgp block starts.
	Pos Position
	// ASN is the local AS number (key asn, required).
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address (key router_id,
	// required).
	RouterID netip.Addr
	// Listen is where peers may connect in (key listen); the zero value
	// opens no listener: the node only dials its peers.
	Listen netip.AddrPort
	// Converge is how long a stopping weir waits after withdrawing its
	// VIPs before it stops serving (key converge, default
	// bgp.DefaultConverge).
	Converge time.Duration
	// GracefulRestart is the restart time advertised with the graceful
	// restart capability (key graceful_restart, 0 to 4095 s; 0: off).
	GracefulRestart time.Duration
	// Peers are the routers to peer with (key peers, at least one).
	Peers []BGPPeer
}

// BGPPeer is one router of bgp.peers.
type BGPPeer struct {
	// Pos is where the peer's entry starts.
	Pos Position
	// Address is the router's address (key address, required).
	Address netip.Addr
	// ASN is the router's AS number (key asn, required).
	ASN uint32
	// Password signs the session with TCP MD5 (key password).
	Password string
	// HoldTime is the proposed hold time (key hold_time, 3 s to 65535 s;
	// default bgp.DefaultHoldTime).
	HoldTime time.Duration
	// Multihop allows an external peer that many hops away (key multihop,
	// 1 to 255; 0: directly connected).
	Multihop int
	// LocalAddress is the session's source address and so the routes'
	// next hop (key local_address); zero: the kernel's choice.
	LocalAddress netip.Addr
	// Port is the router's TCP port (key port, default 179).
	Port int
}

// Announce says that an l4 service's VIP is announced by BGP (key
// announce of an l4 service).
type Announce struct {
	// Pos is where the announce block starts.
	Pos Position
	// Communities are sent with the route, as written: "ASN:VALUE" or a
	// well-known name (key communities).
	Communities []string
	// MinBackends is how many usable backends the service needs for its
	// VIP to be announced (key min_backends, default 1).
	MinBackends int
}

var (
	bgpKeys      = []string{"asn", "router_id", "listen", "converge", "graceful_restart", "peers"}
	bgpPeerKeys  = []string{"address", "asn", "password", "hold_time", "multihop", "local_address", "port"}
	announceKeys = []string{"communities", "min_backends"}
)

// bgp reads the bgp block.
func (p *parser) bgp(n *yaml.Node) *BGP {
	m := p.mapping(n, "bgp", bgpKeys)
	if m == nil {
		return nil
	}
	b := &BGP{Pos: p.pos(m.node), Converge: bgp.DefaultConverge}
	if !m.has("asn") {
		m.missing("asn", "give this node's AS number, as in asn: 64512")
	} else {
		m.asn("asn", &b.ASN)
	}
	if !m.has("router_id") {
		m.missing("router_id", "give the BGP identifier, an IPv4 address of this node, as in router_id: 192.0.2.1")
	} else if m.addr("router_id", &b.RouterID) && !b.RouterID.Is4() {
		p.errorf(m.get("router_id"), m.at("router_id"), "%s is not IPv4; a BGP router id is an IPv4 address, even on an IPv6 network", b.RouterID)
	}
	var listen string
	if m.str("listen", &listen) {
		ap, err := netip.ParseAddrPort(listen)
		switch {
		case err != nil:
			p.errorf(m.get("listen"), m.at("listen"), "%s is not an IP address and port; want ip:port, as in \"198.51.100.2:179\"", quote(listen))
		case ap.Port() == 0:
			p.errorf(m.get("listen"), m.at("listen"), "%s: port must be 1 to 65535 (BGP's is 179)", quote(listen))
		default:
			b.Listen = ap
		}
	}
	if m.duration("converge", &b.Converge, false) && b.Converge == 0 {
		b.Converge = bgp.DefaultConverge
	}
	if m.duration("graceful_restart", &b.GracefulRestart, false) {
		if b.GracefulRestart > 4095*time.Second || (b.GracefulRestart > 0 && b.GracefulRestart < time.Second) {
			p.errorf(m.get("graceful_restart"), m.at("graceful_restart"), "%v is out of range; the restart time is 1s to 4095s (0 turns graceful restart off)", b.GracefulRestart)
		}
	}
	b.Peers = p.bgpPeers(m)
	return b
}

// bgpPeers reads bgp.peers: at least one, each address once.
func (p *parser) bgpPeers(m *mapping) []BGPPeer {
	const example = "a list of mappings, as in \"- {address: 198.51.100.1, asn: 64500}\""
	items, ok := m.list("peers", example)
	if !ok {
		if !m.has("peers") {
			m.missing("peers", "list the routers to announce the VIPs to, as in peers: [{address: 198.51.100.1, asn: 64500}]")
		}
		return nil
	}
	if len(items) == 0 {
		p.errorf(m.get("peers"), m.at("peers"), "the list is empty; give at least one router")
		return nil
	}
	seen := make(map[netip.Addr]Position)
	var out []BGPPeer
	for i, item := range items {
		pm := p.mapping(item, fmt.Sprintf("%s[%d]", m.at("peers"), i), bgpPeerKeys)
		if pm == nil {
			continue
		}
		peer := BGPPeer{Pos: p.pos(pm.node), Port: 179}
		if !pm.has("address") {
			pm.missing("address", "give the router's address, as in address: 198.51.100.1")
		} else if pm.addr("address", &peer.Address) {
			if linkLocal6(peer.Address) {
				p.errorf(pm.get("address"), pm.at("address"), "%s is link-local, which needs an interface to reach; peer with the router's global or unique local address", peer.Address)
			}
			if first, dup := seen[peer.Address]; dup {
				p.errorf(pm.get("address"), pm.at("address"), "%s is already the peer at %s; list each router once", peer.Address, first)
			}
			seen[peer.Address] = peer.Pos
		}
		if !pm.has("asn") {
			pm.missing("asn", "give the router's AS number, as in asn: 64500")
		} else {
			pm.asn("asn", &peer.ASN)
		}
		pm.str("password", &peer.Password)
		if pm.duration("hold_time", &peer.HoldTime, false) && peer.HoldTime != 0 &&
			(peer.HoldTime < 3*time.Second || peer.HoldTime > 65535*time.Second) {
			p.errorf(pm.get("hold_time"), pm.at("hold_time"), "%v is out of range; a hold time is 3s to 65535s", peer.HoldTime)
		}
		pm.integer("multihop", &peer.Multihop, 0, 255)
		if pm.addr("local_address", &peer.LocalAddress) {
			switch {
			case linkLocal6(peer.LocalAddress):
				p.errorf(pm.get("local_address"), pm.at("local_address"), "%s is link-local, which needs an interface to reach; use one of the node's global or unique local addresses", peer.LocalAddress)
			case peer.Address.IsValid() && peer.LocalAddress.Is4() != peer.Address.Is4():
				p.errorf(pm.get("local_address"), pm.at("local_address"), "%s and the peer's address %s are of different IP versions; a session has one", peer.LocalAddress, peer.Address)
			}
		}
		pm.integer("port", &peer.Port, 1, 65535)
		out = append(out, peer)
	}
	return out
}

// asn reads an AS number (1 to 4294967295) into dst.
func (m *mapping) asn(key string, dst *uint32) {
	var v int
	if m.integer(key, &v, 1, math.MaxUint32) {
		*dst = uint32(v)
	}
}

// addr reads an IP address (no port, no zone) into dst, unmapped.
func (m *mapping) addr(key string, dst *netip.Addr) bool {
	var s string
	if !m.str(key, &s) {
		return false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		m.p.errorf(m.get(key), m.at(key), "%s is not an IP address; write it as 198.51.100.1 or 2001:db8::1", quote(s))
		return false
	}
	*dst = a.Unmap()
	return true
}

// linkLocal6 reports whether a is an IPv6 link-local address (fe80::/10),
// which needs an interface to reach, as a configured address cannot say.
// IPv4's 169.254/16 is reached by the kernel's routes, as the BGP peerings
// of cloud routers are.
func linkLocal6(a netip.Addr) bool { return a.Is6() && a.IsLinkLocalUnicast() }

// announce reads an l4 service's announce block.
func (p *parser) announce(m *mapping) *Announce {
	n := m.get("announce")
	if n == nil {
		return nil
	}
	am := p.mapping(n, m.at("announce"), announceKeys)
	if am == nil {
		return nil
	}
	a := &Announce{Pos: p.pos(am.node), MinBackends: 1}
	if items, ok := am.list("communities", `["64512:100", no-export]`); ok {
		for i, item := range items {
			path := fmt.Sprintf("%s[%d]", am.at("communities"), i)
			s, ok := p.str(item, path)
			if !ok {
				continue
			}
			if _, err := bgp.ParseCommunity(s); err != nil {
				p.errorf(item, path, "%v", err)
				continue
			}
			a.Communities = append(a.Communities, s)
		}
	}
	am.integer("min_backends", &a.MinBackends, 1, math.MaxInt32)
	return a
}

// checkAnnounce reports every announce of a configuration without a bgp
// block, which would have nothing to announce it with, and every announce
// of a vip of an address family no peer has: a session carries the routes
// of its own family only, so no router would learn that vip.
func (p *parser) checkAnnounce(cfg *Config) {
	for _, s := range cfg.Services {
		if s.L4 == nil || s.L4.Announce == nil {
			continue
		}
		at := fmt.Sprintf("service %s: announce", quote(s.Name))
		if cfg.BGP == nil {
			p.errorAt(s.L4.Announce.Pos, at,
				"there is no bgp block to announce the vip with; add one (asn, router_id, peers) at the top level, or remove announce")
			continue
		}
		vip, err := netip.ParseAddrPort(s.L4.VIP)
		if err != nil || len(cfg.BGP.Peers) == 0 {
			continue // reported with the vip, or with the peers
		}
		is4 := vip.Addr().Unmap().Is4()
		if !slices.ContainsFunc(cfg.BGP.Peers, func(peer BGPPeer) bool { return !peer.Address.IsValid() || peer.Address.Is4() == is4 }) {
			family := "IPv6"
			if is4 {
				family = "IPv4"
			}
			p.errorAt(s.L4.Announce.Pos, at, "the vip %s is %s and no bgp peer is: a session carries its own address family only; add an %s peer, or remove announce",
				vip.Addr().Unmap(), family, family)
		}
	}
}
