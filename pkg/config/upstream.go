package config

import (
	"fmt"
	"github.com/weir-lb/weir/internal/httpsyntax"
	"math"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"

	"github.com/weir-lb/weir/pkg/l7"
	"github.com/weir-lb/weir/pkg/lb"
	"gopkg.in/yaml.v3"
)

// upstreamKeys are the keys of an upstream mapping.
var upstreamKeys = []string{
	"backends", "discovery", "selection", "hash_key", "host", "tls",
	"health_check", "timeouts", "forwarded_headers",
	"alpn", "proxy_protocol", "sticky", "outlier_detection", "slow_start",
	"max_connections_per_backend", "queue",
	"retry",
}

// l4Forbidden are the upstream keys an l4 service refuses, with why: it
// forwards bytes or packets, never reading or writing HTTP.
var l4Forbidden = []struct{ key, why string }{
	{"hash_key", "an l4 service hashes each connection's addresses and ports with maglev; remove hash_key"},
	{"host", "an l4 service forwards bytes, not HTTP requests, so it sends no Host header; remove host"},
	{"tls", "an l4 service passes TLS through untouched; remove tls, or terminate TLS in an http_proxy service"},
	{"forwarded_headers", "an l4 service forwards bytes, not HTTP requests, so it adds no headers; remove forwarded_headers"},
	{"alpn", "an l4 service forwards bytes, not HTTP requests, so it speaks no HTTP/2 to backends; remove alpn"},
	{"sticky", "an l4 service forwards bytes, not HTTP requests, so it cannot set a cookie; maglev already keeps each connection on one backend; remove sticky"},
	{"outlier_detection", "an l4 service forwards connections, not requests, so it has no response statuses or request failures to judge a backend by; remove outlier_detection and use health_check"},
	{"slow_start", "an l4 service balances with maglev, which slow start does not ramp (changing weights would move connections between backends); remove slow_start"},
	{"max_connections_per_backend", "an l4 service's connections are balanced in the kernel (eBPF), which cannot hold one back until a backend has room; remove max_connections_per_backend, or proxy the traffic as http_proxy"},
	{"queue", "an l4 service has no connection limits to queue for; remove queue"},
	{"retry", "an l4 service forwards connections, not requests: once a connection's bytes have gone to a backend none can be sent again, and a failed connect is already retried max_retries times; remove retry"},
}

// allSelections lists the algorithms, most used first.
var allSelections = []Selection{
	SelectRoundRobin, SelectRandom, SelectFNV, SelectConsistent, SelectMaglev, SelectLeastLoaded,
}

// requiredUpstream reads the upstream key of an l4 service: an inline
// block.
func (p *parser) requiredUpstream(m *mapping, l4 *L4) *Upstream {
	n := m.get("upstream")
	if n == nil {
		m.missing("upstream", `say where to send traffic, as in upstream: {backends: ["127.0.0.1:8001"]}`)
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == tagStr {
		p.errorf(n, m.at("upstream"), "an l4 service takes its upstream as an inline block, as in upstream: {backends: [\"127.0.0.1:8001\"]}; named pools from upstreams: serve http_proxy services only")
		return nil
	}
	return p.upstream(n, m.at("upstream"), l4)
}

// upstreamRef reads an upstream value of an http_proxy service or a
// route: the name of a pool under upstreams, or (when inline is true) an
// inline block.
func (p *parser) upstreamRef(n *yaml.Node, path string, inline bool) *Upstream {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == tagStr {
		return p.poolRef(n, path)
	}
	if !inline {
		if n.Kind == yaml.MappingNode {
			p.errorf(n, path, "in a route, upstream names a pool; define the block under the top-level upstreams: as NAME: {backends: [...]} and write upstream: NAME here")
		} else {
			p.wrongType(n, path, "the name of a pool defined under upstreams:")
		}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, path, `an upstream block, as in {backends: ["127.0.0.1:8001"]}, or the name of a pool defined under upstreams:`)
		return nil
	}
	return p.upstream(n, path, nil)
}

// poolRef resolves the name of a pool, marking it used.
func (p *parser) poolRef(n *yaml.Node, path string) *Upstream {
	name := n.Value
	pl, ok := p.pools[name]
	if !ok {
		if p.upstreamsBad {
			return nil // upstreams: is not a mapping, which is reported; its pools are unknown
		}
		if len(p.pools) == 0 {
			p.errorf(n, path, "no pool is named %s: the file defines no upstreams:; define it there, as in upstreams: {%s: {backends: [\"127.0.0.1:8001\"]}}", quote(name), clip(name))
			return nil
		}
		names := make([]string, 0, len(p.pools))
		for k := range p.pools {
			names = append(names, k)
		}
		slices.Sort(names)
		p.errorf(n, path, "no pool is named %s under upstreams:; %s", quote(name), didYouMean(name, names, "pools"))
		return nil
	}
	pl.used = true
	return pl.up
}

// upstream reads an upstream mapping. l4 is the l4 service's settings,
// nil for an http_proxy service.
func (p *parser) upstream(n *yaml.Node, path string, l4 *L4) *Upstream {
	m := p.mapping(n, path, upstreamKeys)
	if m == nil {
		return nil
	}
	u := &Upstream{
		Pos:              p.pos(m.node),
		Selection:        SelectRoundRobin,
		Timeouts:         defaultTimeouts(l4 != nil),
		ForwardedHeaders: l4 == nil,
	}
	if l4 != nil {
		u.Selection = SelectMaglev
		for _, f := range l4Forbidden {
			m.forbid(f.key, f.why)
		}
	}
	var knownSource bool
	u.Discovery, knownSource = p.discovery(m, u.Pos)
	if knownSource {
		u.Backends = p.backends(m, u.Discovery.Type, l4)
	}
	p.selection(m, u, l4 != nil)
	u.ALPN = ALPNH1
	if l4 == nil {
		p.hostHeader(m, "host", &u.Host)
		if tn := m.get("tls"); tn != nil {
			u.TLS = p.tlsClient(tn, m.at("tls"), u.Host)
		}
		m.boolean("forwarded_headers", &u.ForwardedHeaders)
		p.plainALPN(m, u)
		if sn := m.get("sticky"); sn != nil {
			u.Sticky = p.sticky(sn, m.at("sticky"))
		}
	}
	p.sendProxyProtocol(m, u, l4)
	if l4 == nil {
		p.passiveHealth(m, u)
		p.connLimits(m, u)
		u.Retry = p.retryPolicy(m)
	}
	if hn := m.get("health_check"); hn != nil {
		u.HealthCheck = p.healthCheck(hn, m.at("health_check"))
	}
	if tn := m.get("timeouts"); tn != nil {
		p.timeouts(tn, m.at("timeouts"), l4 != nil, &u.Timeouts)
	}
	return u
}

// backends reads the static backend list, which dns discovery replaces.
func (p *parser) backends(m *mapping, discovery DiscoveryType, l4 *L4) []BackendSpec {
	const example = `backends: ["127.0.0.1:8001", "127.0.0.1:8002"]`
	if discovery == DiscoveryDNS {
		m.forbid("backends", "dns discovery finds the backends from discovery.names; remove backends, or remove the discovery block")
		return nil
	}
	items, ok := m.list("backends", example)
	if !ok {
		if !m.has("backends") {
			m.missing("backends", "list the servers to send traffic to, as in "+example+", or use discovery: {type: dns, names: [...]}")
		}
		return nil
	}
	if len(items) == 0 {
		p.errorf(m.get("backends"), m.at("backends"), "the list is empty; give at least one backend, as in %s", example)
		return nil
	}
	seen := make(map[string]Position)
	var out []BackendSpec
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", m.at("backends"), i)
		b, ok := p.backend(item, path, l4)
		if !ok {
			continue
		}
		if first, dup := seen[b.Addr]; dup {
			p.errorAt(b.Pos, path, "backend %s is listed twice (first at %s); remove one, or raise its weight to send it more traffic", clip(b.Addr), first)
			continue
		}
		seen[b.Addr] = b.Pos
		out = append(out, b)
	}
	p.checkPrimaries(m, out)
	return out
}

// backend reads one backend: an address, or a mapping with addr, weight
// and metadata.
func (p *parser) backend(n *yaml.Node, path string, l4 *L4) (BackendSpec, bool) {
	b := BackendSpec{Pos: p.pos(n), Weight: 1}
	addrNode, addrPath := n, path
	if n.Kind == yaml.MappingNode {
		m := p.mapping(n, path, []string{"addr", "weight", "metadata", "backup", "max_connections"})
		okWeight := !m.has("weight") || m.integer("weight", &b.Weight, 1, lb.MaxWeight)
		if l4 != nil {
			m.forbid("max_connections", "an l4 service's connections are balanced in the kernel (eBPF), which cannot hold one back until a backend has room; remove max_connections")
		} else {
			m.integer("max_connections", &b.MaxConnections, 1, math.MaxInt32)
		}
		b.Metadata = m.stringMap("metadata", nil)
		m.boolean("backup", &b.Backup)
		addrNode, addrPath = m.get("addr"), m.at("addr")
		if addrNode == nil {
			m.missing("addr", `give the backend's address, as in addr: "127.0.0.1:8001"`)
			return b, false
		}
		if !okWeight {
			return b, false
		}
	}
	s, ok := p.str(addrNode, addrPath)
	if !ok {
		return b, false
	}
	addr, err := lb.ParseAddr(s)
	if err != nil {
		p.errorf(addrNode, addrPath, "%v", err)
		return b, false
	}
	if msg := l4BackendProblem(addr, l4); msg != "" {
		p.errorf(addrNode, addrPath, "%s", msg)
		return b, false
	}
	b.Addr = addr
	return b, true
}

// l4BackendProblem says why addr cannot be a backend of an l4 service, or
// returns "".
func l4BackendProblem(addr string, l4 *L4) string {
	if l4 == nil {
		return ""
	}
	if strings.HasPrefix(addr, "unix:") {
		return fmt.Sprintf("%s: an l4 backend is ip:port or host:port, not a Unix socket", clip(addr))
	}
	host, _, _ := net.SplitHostPort(addr)
	if _, err := netip.ParseAddr(host); err != nil && l4.Dataplane == DataplaneBPF {
		return fmt.Sprintf("%s: the bpf data plane forwards packets to IP addresses and cannot resolve %s; give the backend's IP address, or set dataplane: userspace", clip(addr), quote(host))
	}
	return ""
}

// discovery reads the discovery mapping; pos is the upstream's position,
// used when the mapping is absent. It reports whether the discovery type
// is known, since what else the upstream needs depends on it.
func (p *parser) discovery(um *mapping, pos Position) (Discovery, bool) {
	d := Discovery{Pos: pos, Type: DiscoveryStatic}
	n := um.get("discovery")
	if n == nil {
		return d, true
	}
	m := p.mapping(n, um.at("discovery"), []string{"type", "names", "refresh", "server", "network"})
	if m == nil {
		return d, false
	}
	d.Pos = p.pos(m.node)
	if !enumField(m, "type", &d.Type, DiscoveryStatic, DiscoveryDNS) && m.has("type") {
		return d, false
	}
	if d.Type == DiscoveryStatic {
		for _, key := range []string{"names", "refresh", "server", "network"} {
			m.forbid(key, "applies to type: dns only; set type: dns, or remove it and list the servers under backends")
		}
		return d, true
	}
	d.Refresh, d.Network = DefaultDNSRefresh, DefaultDNSNetwork
	d.Names = p.dnsNames(m)
	m.duration("refresh", &d.Refresh, true)
	if m.str("server", &d.Server) {
		ap, err := netip.ParseAddrPort(d.Server)
		if err != nil || ap.Port() == 0 {
			p.errorf(m.get("server"), m.at("server"), "%s: want the DNS server's ip:port, as in \"192.0.2.53:53\"", quote(d.Server))
		} else {
			d.Server = ap.String()
		}
	}
	enumField(m, "network", &d.Network, "ip", "ip4", "ip6")
	return d, true
}

// dnsNames reads the names dns discovery resolves.
func (p *parser) dnsNames(m *mapping) []string {
	const example = `names: ["backend.example.com:8080"]`
	items, ok := m.list("names", example)
	switch {
	case !ok && !m.has("names"):
		m.missing("names", "dns discovery needs names to resolve, as in "+example)
		return nil
	case ok && len(items) == 0:
		p.errorf(m.get("names"), m.at("names"), "the list is empty; give at least one name, as in %s", example)
		return nil
	}
	seen := make(map[string]Position)
	var out []string
	for i, item := range items {
		path := fmt.Sprintf("%s[%d]", m.at("names"), i)
		s, ok := p.str(item, path)
		if !ok {
			continue
		}
		name, err := dnsName(s)
		if err != nil {
			p.errorf(item, path, "%v", err)
			continue
		}
		if first, dup := seen[name]; dup {
			p.errorf(item, path, "%s is listed twice (first at %s); remove one", clip(name), first)
			continue
		}
		seen[name] = p.pos(item)
		out = append(out, name)
	}
	return out
}

// dnsName validates and normalises a name for dns discovery:
// "host:port" for A/AAAA records or "_service._proto.name" for SRV
// records, which carry their own ports.
func dnsName(s string) (string, error) {
	if strings.HasPrefix(s, "_") && !strings.Contains(s, ":") {
		labels := strings.Split(s, ".")
		if len(labels) < 3 || !strings.HasPrefix(labels[1], "_") {
			return "", fmt.Errorf("%s: an SRV name has the form _service._proto.name, as in _http._tcp.example.com", quote(s))
		}
		if _, err := lb.ParseAddr(s + ":1"); err != nil {
			return "", fmt.Errorf("%s is not a valid DNS name", quote(s))
		}
		return strings.ToLower(s), nil
	}
	addr, err := lb.ParseAddr(s)
	if err != nil || strings.HasPrefix(addr, "unix:") {
		return "", fmt.Errorf("%s: want host:port (A/AAAA records) or _service._proto.name (SRV records)", quote(s))
	}
	host, _, _ := net.SplitHostPort(addr)
	if _, err := netip.ParseAddr(host); err == nil {
		return "", fmt.Errorf("%s is an IP address, which needs no resolving; list it under backends with static discovery", quote(s))
	}
	return addr, nil
}

// selection reads selection and hash_key. A hash key is refused with a
// selection that ignores it, so that nobody believes they have sticky
// sessions when they do not.
func (p *parser) selection(m *mapping, u *Upstream, l4 bool) {
	if !enumField(m, "selection", &u.Selection, allSelections...) && m.has("selection") {
		return
	}
	if l4 {
		if u.Selection != SelectMaglev {
			p.errorf(m.get("selection"), m.at("selection"), "an l4 service balances with maglev only, which keeps each connection on one backend as backends come and go; remove selection or set it to maglev")
		}
		return
	}
	hk := m.get("hash_key")
	if !u.Selection.Hashed() {
		if hk != nil {
			how := string(u.Selection)
			if !m.has("selection") {
				how += " (the default)"
			}
			p.errorf(m.keys["hash_key"], m.at("hash_key"), "hash_key has no effect with selection %s; remove it or choose consistent, fnv or maglev", how)
		}
		return
	}
	u.HashKey = l7.HashKey{Kind: l7.KeyClientIP}
	if hk == nil {
		return
	}
	if s, ok := p.str(hk, m.at("hash_key")); ok {
		k, err := parseHashKey(s)
		if err != nil {
			p.errorf(hk, m.at("hash_key"), "%v", err)
			return
		}
		u.HashKey = k
	}
}

// hashKeyKinds lists the hash key kinds, for suggestions.
var hashKeyKinds = []string{"client_ip", "uri", "header", "cookie", "query"}

// hashKeyKindsByName maps the written kinds of a hash key to pkg/l7's.
var hashKeyKindsByName = map[string]l7.KeyKind{
	"client_ip": l7.KeyClientIP, "uri": l7.KeyURI,
	"header": l7.KeyHeader, "cookie": l7.KeyCookie, "query": l7.KeyQuery,
}

// parseHashKey parses client_ip, uri, header:NAME, cookie:NAME or
// query:NAME into the key pkg/l7 uses, once: header names are put in
// canonical form here rather than on every request.
func parseHashKey(s string) (l7.HashKey, error) {
	kind, name, named := strings.Cut(s, ":")
	k := l7.HashKey{Kind: hashKeyKindsByName[kind], Name: name}
	switch k.Kind {
	case l7.KeyClientIP, l7.KeyURI:
		if named {
			return l7.HashKey{}, fmt.Errorf("%s: %s takes no name; write just %s", quote(s), kind, kind)
		}
		return k, nil
	case l7.KeyHeader, l7.KeyCookie, l7.KeyQuery:
		if name == "" {
			return l7.HashKey{}, fmt.Errorf("%s needs a name after the colon, as in %s", quote(s), hashKeyExample(k.Kind))
		}
	default:
		return l7.HashKey{}, fmt.Errorf("unknown hash key %s; want client_ip, uri, header:NAME, cookie:NAME or query:NAME (%s)", quote(s), didYouMean(kind, hashKeyKinds, "kinds"))
	}
	switch k.Kind {
	case l7.KeyHeader, l7.KeyCookie:
		if !httpsyntax.IsToken(name) {
			return l7.HashKey{}, fmt.Errorf("%s: %s is not a valid %s name", quote(s), quote(name), kind)
		}
		if k.Kind == l7.KeyHeader {
			k.Name = textproto.CanonicalMIMEHeaderKey(name)
		}
	case l7.KeyQuery:
		if strings.ContainsAny(name, "&=#? \t") {
			return l7.HashKey{}, fmt.Errorf("%s: %s is not a query parameter name", quote(s), quote(name))
		}
	}
	return k, nil
}

// hashKeyExample shows a named hash key of kind k.
func hashKeyExample(k l7.KeyKind) string {
	switch k {
	case l7.KeyHeader:
		return "header:X-User-Id"
	case l7.KeyCookie:
		return "cookie:session"
	}
	return "query:user"
}

// hostHeader reads a Host header value: a host name or IP, optionally
// with a port. Only the characters a host may hold are accepted, so no
// configuration can inject a line break into a request.
func (p *parser) hostHeader(m *mapping, key string, dst *string) {
	var s string
	if !m.str(key, &s) {
		return
	}
	if s == "" || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:[]", r))
	}) >= 0 {
		p.errorf(m.get(key), m.at(key), "%s is not a valid Host header; give a host name, optionally with :port, as in api.example.com", quote(s))
		return
	}
	*dst = s
}

// tlsClient reads the tls mapping of an upstream; host is the upstream's
// Host header, the default server name.
func (p *parser) tlsClient(n *yaml.Node, path, host string) *TLSClient {
	t := &TLSClient{Verify: true, ALPN: ALPNH1, SNI: sniFromHost(host)}
	m := p.mapping(n, path, []string{"sni", "verify", "ca_file", "alpn"})
	if m == nil {
		return t
	}
	t.Pos = p.pos(m.node)
	if m.str("sni", &t.SNI) {
		if msg := checkSNI(t.SNI); msg != "" {
			p.errorf(m.get("sni"), m.at("sni"), "%s", msg)
		}
	}
	m.boolean("verify", &t.Verify)
	if m.file("ca_file", &t.CAFile) && p.checkCAFile(m.get("ca_file"), m.at("ca_file"), t.CAFile) && !t.Verify {
		p.errorf(m.keys["ca_file"], m.at("ca_file"), "ca_file has no effect with verify: false; remove one of them")
	}
	enumField(m, "alpn", &t.ALPN, ALPNH1, ALPNH2, ALPNH2H1)
	return t
}

// sniFromHost returns the server name a Host header implies: its host
// part, unless that is an IP address, which SNI cannot carry.
func sniFromHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ""
	}
	return host
}

// checkSNI returns a problem with a server name, or "".
func checkSNI(sni string) string {
	if _, err := netip.ParseAddr(sni); err == nil {
		return fmt.Sprintf("%s is an IP address, which SNI cannot carry (RFC 6066); give the DNS name in the backend's certificate", quote(sni))
	}
	if addr, err := lb.ParseAddr(sni + ":1"); err != nil || strings.HasPrefix(addr, "unix:") {
		return fmt.Sprintf("%s is not a DNS name; give the name in the backend's certificate, without a port", quote(sni))
	}
	return ""
}

// defaultTimeouts returns the default timeouts; an l4 service reads no
// HTTP request head, so it has no header timeout.
func defaultTimeouts(l4 bool) Timeouts {
	t := Timeouts{
		Connect: DefaultConnectTimeout,
		Read:    DefaultReadTimeout,
		Write:   DefaultWriteTimeout,
		Idle:    DefaultIdleTimeout,
		Header:  DefaultHeaderTimeout,
	}
	if l4 {
		t.Header = 0
	}
	return t
}

// timeouts reads the timeouts mapping into t, which holds the defaults.
func (p *parser) timeouts(n *yaml.Node, path string, l4 bool, t *Timeouts) {
	m := p.mapping(n, path, []string{"connect", "read", "write", "idle", "header"})
	if m == nil {
		return
	}
	m.duration("connect", &t.Connect, true)
	m.duration("read", &t.Read, true)
	m.duration("write", &t.Write, true)
	m.duration("idle", &t.Idle, true)
	if l4 {
		m.forbid("header", "an l4 service reads no HTTP request head; remove header")
		return
	}
	m.duration("header", &t.Header, true)
}
