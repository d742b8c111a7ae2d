package config

import (
	"crypto/tls"
	"fmt"
	"github.com/weir-lb/weir/internal/httpsyntax"
	"math"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// serviceKeys are every key a service may have, whatever its kind.
var serviceKeys = []string{
	"name", "kind", "listen", "upstream", "routes",
	"status", "body", "headers",
	"protocol", "vip", "interface", "dataplane",
	"access_log", "request_id", "limits", "snat",
	"forwarding", "encap", "gue_port", "announce",
}

// kindKeys are the keys each kind of service accepts.
var kindKeys = map[Kind][]string{
	KindRespond:   {"name", "kind", "listen", "status", "body", "headers", "access_log", "request_id", "limits"},
	KindHTTPProxy: {"name", "kind", "listen", "upstream", "routes", "access_log", "request_id", "limits"},
	KindL4:        {"name", "kind", "protocol", "vip", "interface", "dataplane", "upstream", "snat", "forwarding", "encap", "gue_port", "announce"},
}

// validServiceName is the form of a service name: it appears in metric
// labels, log lines and BPF map names, so it is kept to a safe alphabet.
var validServiceName = regexp.MustCompile(`^[a-z0-9_-]+$`)

// services reads the services list, checking that names are unique.
func (p *parser) services(m *mapping) []Service {
	items, ok := m.list("services", "a list of mappings, each starting with \"- name: ...\"")
	if !ok {
		if !m.has("services") {
			m.missing("services", "define at least one service (see examples/quickstart.yaml)")
		}
		return nil
	}
	if len(items) == 0 {
		p.errorf(m.get("services"), "services", "the list is empty; define at least one service")
		return nil
	}
	names := make(map[string]Position)
	var out []Service
	for i, item := range items {
		if s, ok := p.service(item, fmt.Sprintf("services[%d]", i), names); ok {
			out = append(out, s)
		}
	}
	return out
}

// service reads one service. names maps the names already taken to
// where. Kind-specific keys are read only when the kind is known, so that
// a misspelt kind yields one error, not a cascade.
func (p *parser) service(n *yaml.Node, path string, names map[string]Position) (Service, bool) {
	m := p.mapping(n, path, serviceKeys)
	if m == nil {
		return Service{}, false
	}
	s := Service{Pos: p.pos(m.node)}
	p.serviceName(m, &s.Name, names)
	label := s.Name
	if label == "" {
		label = path
	}
	if !m.has("kind") {
		m.missing("kind", "say what the service does: kind: http_proxy, respond or l4")
		return s, true
	}
	if !enumField(m, "kind", &s.Kind, KindHTTPProxy, KindRespond, KindL4) {
		return s, true
	}
	p.forbidOtherKinds(m, s.Kind)
	switch s.Kind {
	case KindRespond:
		s.Listeners = p.listeners(m, label)
		s.Respond = p.respond(m, s.Name)
		p.httpLogging(m, &s)
		s.Limits = p.limits(m, s.Kind)
	case KindHTTPProxy:
		s.Listeners = p.listeners(m, label)
		s.Upstream, s.Routes = p.proxyTarget(m)
		p.httpLogging(m, &s)
		s.Limits = p.limits(m, s.Kind)
	case KindL4:
		s.L4 = p.l4(m, label)
		s.Upstream = p.requiredUpstream(m, s.L4)
		p.checkDSRBackends(s.L4, s.Upstream, m.at("upstream"))
	}
	return s, true
}

// serviceName reads a service's name into dst and checks that it is
// valid and not already in names, which it then joins.
func (p *parser) serviceName(m *mapping, dst *string, names map[string]Position) {
	if !m.str("name", dst) {
		if !m.has("name") {
			m.missing("name", "give the service a unique name, such as \"name: web\"")
		}
		return
	}
	n := m.get("name")
	if !validServiceName.MatchString(*dst) {
		p.errorf(n, m.at("name"), "%s is not a valid name; use lower-case letters, digits, \"_\" and \"-\"", quote(*dst))
		return
	}
	if first, dup := names[*dst]; dup {
		p.errorf(n, m.at("name"), "service name %s is already used by the service at %s; names must be unique", quote(*dst), first)
		return
	}
	names[*dst] = p.pos(n)
}

// forbidOtherKinds reports the keys that belong to another kind of
// service, saying which kind they belong to.
func (p *parser) forbidOtherKinds(m *mapping, kind Kind) {
	allowed := kindKeys[kind]
	for _, key := range serviceKeys {
		if !m.has(key) || slices.Contains(allowed, key) {
			continue
		}
		switch {
		case key == "listen" && kind == KindL4:
			m.forbid(key, "an l4 service does not listen: its vip is the address it serves; remove listen")
		case key == "upstream" && kind == KindRespond:
			m.forbid(key, "a respond service answers requests itself and has no upstream; remove upstream, or set kind: http_proxy")
		case key == "routes" && kind == KindRespond:
			m.forbid(key, "a respond service answers every request the same way; set kind: http_proxy, whose routes may respond, redirect or proxy")
		case key == "access_log" && kind == KindL4:
			m.forbid(key, "an l4 service forwards bytes, not HTTP requests, so it writes no access log; remove access_log")
		case key == "request_id" && kind == KindL4:
			m.forbid(key, "an l4 service forwards bytes, not HTTP requests, so it gives them no ids; remove request_id")
		default:
			m.forbid(key, fmt.Sprintf("only %s services use this key, and this service is kind %s; remove it", ownerKinds(key), kind))
		}
	}
}

// ownerKinds names the kinds of service a key belongs to: "respond",
// "respond and http_proxy".
func ownerKinds(key string) string {
	var owners []string
	for _, k := range []Kind{KindRespond, KindHTTPProxy, KindL4} {
		if slices.Contains(kindKeys[k], key) {
			owners = append(owners, string(k))
		}
	}
	return strings.Join(owners, " and ")
}

// listeners reads the listen list of an http_proxy or respond service.
func (p *parser) listeners(m *mapping, service string) []Listener {
	const example = `listen: ["127.0.0.1:8080"]`
	items, ok := m.list("listen", example)
	if !ok {
		if !m.has("listen") {
			m.missing("listen", "list the addresses to accept on, as in "+example)
		}
		return nil
	}
	if len(items) == 0 {
		p.errorf(m.get("listen"), m.at("listen"), "the list is empty; give at least one address, as in %s", example)
		return nil
	}
	var out []Listener
	for i, item := range items {
		if l, ok := p.listener(item, fmt.Sprintf("%s[%d]", m.at("listen"), i), service); ok {
			out = append(out, l)
		}
	}
	return out
}

// listener reads one listen entry: "ip:port", or a mapping with addr,
// tls, proxy_protocol and max_connections.
func (p *parser) listener(n *yaml.Node, path, service string) (Listener, bool) {
	l := Listener{Pos: p.pos(n)}
	addrNode, addrPath := n, path
	if n.Kind == yaml.MappingNode {
		m := p.mapping(n, path, []string{"addr", "tls", "proxy_protocol", "max_connections"})
		if m == nil {
			return l, false
		}
		if tn := m.get("tls"); tn != nil {
			l.TLS = p.listenerTLS(tn, m.at("tls"))
		}
		if pn := m.get("proxy_protocol"); pn != nil {
			l.ProxyProtocol = p.listenerProxyProtocol(pn, m.at("proxy_protocol"))
		}
		m.integer("max_connections", &l.MaxConnections, 1, math.MaxInt)
		addrNode, addrPath = m.get("addr"), m.at("addr")
		if addrNode == nil {
			m.missing("addr", "give the address to accept on, as in addr: \"0.0.0.0:443\"")
			return l, false
		}
	}
	s, ok := p.str(addrNode, addrPath)
	if !ok {
		return l, false
	}
	addr, err := listenAddr(s)
	if err != nil {
		p.errorf(addrNode, addrPath, "%v", err)
		return l, false
	}
	l.Addr = addr
	p.claim("tcp "+addr, "listen "+addr, service, l.Pos)
	return l, true
}

// claim records that service uses key (a protocol and address), or
// reports that an earlier service already does. what names the use in
// the message, as in "listen 127.0.0.1:80".
func (p *parser) claim(key, what, service string, pos Position) {
	if first, taken := p.claims[key]; taken {
		p.errorAt(pos, "", "%s already used by service %s at %s; every address may be used once", what, clip(first.service), first.pos)
		return
	}
	p.claims[key] = claim{service: service, pos: pos, what: what}
}

// listenAddr validates and normalises a listen address. It must be an IP
// literal: a host name may resolve to several addresses, or to different
// ones from one start to the next.
func listenAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%s is not an address; want ip:port or [ipv6]:port, as in 127.0.0.1:8080", quote(s))
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return "", fmt.Errorf("%s: port must be 1 to 65535", quote(s))
	}
	if host == "" {
		return "", fmt.Errorf("%s has no IP address; write 0.0.0.0:%s or [::]:%s to accept on every interface", quote(s), port, port)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("%s: %s is not an IP address; a listener binds an IP address, such as 127.0.0.1 or [::1]", quote(s), quote(host))
	}
	return netip.AddrPortFrom(ip, uint16(pn)).String(), nil
}

// listenerTLS reads the tls mapping of a listener.
func (p *parser) listenerTLS(n *yaml.Node, path string) *ListenerTLS {
	t := &ListenerTLS{MinVersion: DefaultTLSMinVersion}
	m := p.mapping(n, path, []string{"certs", "min_version"})
	if m == nil {
		return t
	}
	const example = `certs: [{cert: server.crt, key: server.key}]`
	items, ok := m.list("certs", example)
	switch {
	case !ok && !m.has("certs"):
		m.missing("certs", "a TLS listener needs a certificate, as in "+example)
	case ok && len(items) == 0:
		p.errorf(m.get("certs"), m.at("certs"), "the list is empty; a TLS listener needs at least one certificate, as in %s", example)
	}
	for i, item := range items {
		if c, ok := p.cert(item, fmt.Sprintf("%s[%d]", m.at("certs"), i)); ok {
			t.Certs = append(t.Certs, c)
		}
	}
	if vn := m.get("min_version"); vn != nil {
		if v, ok := p.tlsVersion(vn, m.at("min_version")); ok {
			t.MinVersion = v
		}
	}
	return t
}

// cert reads one {cert, key} entry and checks that the pair loads.
func (p *parser) cert(n *yaml.Node, path string) (Cert, bool) {
	m := p.mapping(n, path, []string{"cert", "key"})
	if m == nil {
		return Cert{}, false
	}
	var c Cert
	okCert := m.file("cert", &c.CertFile)
	okKey := m.file("key", &c.KeyFile)
	if !m.has("cert") {
		m.missing("cert", "give the PEM certificate chain file, as in cert: server.crt")
	}
	if !m.has("key") {
		m.missing("key", "give the PEM private key file, as in key: server.key")
	}
	if !okCert || !okKey {
		return c, false
	}
	c.Pos = p.pos(m.keys["cert"])
	return c, p.checkKeyPair(m, c)
}

// tlsVersion reads a min_version value. It is usually written unquoted,
// which YAML reads as a number, so numbers are accepted as written.
func (p *parser) tlsVersion(n *yaml.Node, path string) (uint16, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != tagStr && n.ShortTag() != tagFloat && n.ShortTag() != tagInt) {
		p.wrongType(n, path, `"1.2" or "1.3"`)
		return 0, false
	}
	switch n.Value {
	case "1.2":
		return tls.VersionTLS12, true
	case "1.3":
		return tls.VersionTLS13, true
	case "1", "1.0", "1.1":
		p.errorf(n, path, "TLS %s is refused: it is insecure and deprecated (RFC 8996); use \"1.2\" or \"1.3\"", n.Value)
	default:
		p.errorf(n, path, "unknown TLS version %s; use \"1.2\" or \"1.3\"", quote(n.Value))
	}
	return 0, false
}

// respond reads the keys of a respond service.
func (p *parser) respond(m *mapping, name string) *Respond {
	r := &Respond{Status: DefaultRespondStatus}
	m.integer("status", &r.Status, 100, 599)
	m.str("body", &r.Body)
	r.Body = strings.ReplaceAll(r.Body, "{service}", name)
	r.Headers = m.stringMap("headers", checkResponseHeader)
	return r
}

// checkResponseHeader checks a header a respond service adds. The framing
// headers are refused: weir computes them from the body, and a wrong one
// would corrupt the connection.
func checkResponseHeader(name, value string) (badKey, badValue string) {
	if k, v := checkHeader(name, value); k != "" || v != "" {
		return k, v
	}
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "connection":
		return fmt.Sprintf("header %s is set by weir from the body; remove it", quote(name)), ""
	}
	return "", ""
}

// checkHeader checks a header name (an RFC 9110 token) and value (no
// control characters but tab), so that no configuration can inject a
// line break into a message.
func checkHeader(name, value string) (badKey, badValue string) {
	if !httpsyntax.IsToken(name) {
		return fmt.Sprintf("%s is not a valid header name; use letters, digits and \"-\"", quote(name)), ""
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return "", fmt.Sprintf("value %s contains a control character or line break; remove it", quote(value))
		}
	}
	return "", ""
}

// maxInterfaceName is the longest Linux network interface name
// (IFNAMSIZ is 16 bytes including the terminating NUL).
const maxInterfaceName = 15

// l4 reads the keys of an l4 service and claims its vip.
func (p *parser) l4(m *mapping, service string) *L4 {
	l := &L4{Pos: p.pos(m.node), Dataplane: DataplaneAuto}
	if !m.has("protocol") {
		m.missing("protocol", "say what to balance: protocol: tcp or protocol: udp")
	}
	okProto := enumField(m, "protocol", &l.Protocol, ProtocolTCP, ProtocolUDP)
	enumField(m, "dataplane", &l.Dataplane, DataplaneAuto, DataplaneBPF, DataplaneUserspace)
	if m.str("vip", &l.VIP) {
		l.Pos = p.pos(m.get("vip"))
		vip, err := vipAddr(l.VIP)
		if err != nil {
			p.errorf(m.get("vip"), m.at("vip"), "%v", err)
		} else if l.VIP = vip; okProto {
			p.claim(string(l.Protocol)+" "+vip, "vip "+vip, service, l.Pos)
		}
	} else if !m.has("vip") {
		m.missing("vip", "give the virtual address clients connect to, as in vip: \"192.0.2.10:80\"")
	}
	if m.str("interface", &l.Interface) {
		if msg := checkInterfaceName(l.Interface); msg != "" {
			p.errorf(m.get("interface"), m.at("interface"), "%s", msg)
		}
	} else if !m.has("interface") && l.Dataplane == DataplaneBPF {
		m.missing("interface", "the bpf data plane attaches to a network interface; name it, as in interface: eth0")
	}
	p.l4SNAT(m, l)
	p.l4Forwarding(m, l)
	l.Announce = p.announce(m)
	return l
}

// vipAddr validates and normalises a vip: an IP literal that clients
// connect to, so neither a host name nor a wildcard.
func vipAddr(s string) (string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("%s is not an IP address and port; want ip:port or [ipv6]:port, as in 192.0.2.10:80", quote(s))
	}
	switch {
	case ap.Port() == 0:
		return "", fmt.Errorf("%s: port must be 1 to 65535", quote(s))
	case ap.Addr().IsUnspecified():
		return "", fmt.Errorf("%s: a vip is the one address clients connect to, not a wildcard; give that address", quote(s))
	case ap.Addr().Zone() != "":
		return "", fmt.Errorf("%s: a vip cannot carry an IPv6 zone; give a global address", quote(s))
	}
	return ap.String(), nil
}

// checkInterfaceName returns a problem with a Linux interface name, or "".
func checkInterfaceName(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > maxInterfaceName:
		return fmt.Sprintf("%s is longer than %d bytes, the limit of interface names", quote(name), maxInterfaceName)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Sprintf("%s is not a valid interface name", quote(name))
	}
	return ""
}
