package config

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/weir-lb/weir/internal/httpsyntax"
	"github.com/weir-lb/weir/pkg/proxyproto"
	"gopkg.in/yaml.v3"
)

// pool is a named upstream of the top-level upstreams key, and whether a
// service or route refers to it; up is nil for a pool written with an
// error, already reported.
type pool struct {
	up   *Upstream
	pos  Position
	used bool
}

// upstreams reads the top-level upstreams mapping of named pools, before
// the services that refer to them.
func (p *parser) upstreams(m *mapping) map[string]*Upstream {
	n := m.get("upstreams")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.wrongType(n, "upstreams", `a mapping of pool names to upstream blocks, as in {api: {backends: ["127.0.0.1:8001"]}}`)
		p.upstreamsBad = true
		return nil
	}
	sm := p.mapping(n, "upstreams", nil)
	out := make(map[string]*Upstream, len(sm.order))
	for _, name := range sm.order {
		k, v := sm.keys[name], sm.vals[name]
		if _, ok := p.str(k, "upstreams"); !ok {
			continue
		}
		path := sm.at(name)
		if !validServiceName.MatchString(name) {
			p.errorf(k, path, "%s is not a valid pool name; use lower-case letters, digits, \"_\" and \"-\"", quote(name))
			p.pools[name] = &pool{pos: p.pos(k), used: true} // known, so that references to it add no error
			continue
		}
		u := p.upstream(v, path, nil)
		if u == nil {
			p.pools[name] = &pool{pos: p.pos(k), used: true}
			continue
		}
		u.Name = name
		out[name] = u
		p.pools[name] = &pool{up: u, pos: p.pos(k)}
	}
	return out
}

// checkPoolNames refuses a pool named like a service: metrics, logs and
// the admin API name a pool's backends by the pool's name, as they name
// an inline upstream's by its service's.
func (p *parser) checkPoolNames(services []Service) {
	for _, sc := range services {
		if pl := p.pools[sc.Name]; pl != nil {
			p.errorAt(pl.pos, "upstreams."+clip(sc.Name), "the pool has the name of the service at %s; metrics and the admin API name both by it, so rename one", sc.Pos)
		}
	}
}

// warnUnusedPools warns about the pools nothing refers to: defined for a
// reason, so a missing reference is likely a mistake.
func (p *parser) warnUnusedPools() {
	var unused []string
	for name, pl := range p.pools {
		if !pl.used {
			unused = append(unused, name)
		}
	}
	slices.SortFunc(unused, func(a, b string) int {
		pa, pb := p.pools[a].pos, p.pools[b].pos
		return cmp.Or(cmp.Compare(pa.Line, pb.Line), cmp.Compare(pa.Col, pb.Col))
	})
	for _, name := range unused {
		p.warnAt(p.pools[name].pos, "upstreams.%s: no service or route uses this pool; remove it, or send traffic to it with upstream: %s", clip(name), clip(name))
	}
}

// plainALPN reads the pool-level alpn key: the protocol spoken to
// plaintext backends. With tls, the protocol is negotiated, and tls.alpn
// says which are offered.
func (p *parser) plainALPN(m *mapping, u *Upstream) {
	var s string
	if !m.str("alpn", &s) {
		return
	}
	n, path := m.get("alpn"), m.at("alpn")
	switch ALPN(s) {
	case ALPNH1, ALPNH2C:
		if u.TLS != nil {
			p.errorf(n, path, "with tls, the protocol is negotiated: remove alpn and choose with tls: {alpn: h1, h2 or h2h1}")
			return
		}
		u.ALPN = ALPN(s)
	case ALPNH2, ALPNH2H1:
		p.errorf(n, path, "%s is negotiated over TLS: write it as tls: {alpn: %s}; for HTTP/2 to plaintext backends write alpn: h2c", quote(s), s)
	default:
		p.errorf(n, path, "unknown value %s; %s", quote(s), didYouMean(s, []string{"h1", "h2c"}, "values"))
	}
}

// sticky reads a pool's sticky mapping.
func (p *parser) sticky(n *yaml.Node, path string) *Sticky {
	m := p.mapping(n, path, []string{"cookie", "ttl", "secure", "http_only", "same_site", "secret_file"})
	if m == nil {
		return nil
	}
	s := &Sticky{Pos: p.pos(m.node), HTTPOnly: true, SameSite: DefaultStickySameSite}
	if m.str("cookie", &s.Cookie) {
		if !httpsyntax.IsToken(s.Cookie) {
			p.errorf(m.get("cookie"), m.at("cookie"), "%s is not a valid cookie name; use letters, digits, \"-\" and \"_\"", quote(s.Cookie))
		}
	} else if !m.has("cookie") {
		m.missing("cookie", "name the cookie that pins a client to its backend, as in cookie: weir_backend")
	}
	m.duration("ttl", &s.TTL, false)
	m.boolean("secure", &s.Secure)
	m.boolean("http_only", &s.HTTPOnly)
	if enumField(m, "same_site", &s.SameSite, SameSiteLax, SameSiteStrict, SameSiteNone) && s.SameSite == SameSiteNone && !s.Secure {
		p.errorf(m.get("same_site"), m.at("same_site"), "browsers refuse a SameSite=None cookie that is not Secure; add secure: true, or choose lax or strict")
	}
	if m.file("secret_file", &s.SecretFile) {
		s.Secret = p.stickySecret(m.get("secret_file"), m.at("secret_file"), s.SecretFile)
	}
	return s
}

// minStickySecretLen is the shortest sticky secret accepted, in bytes:
// as for an admin token, guessing one must be hopeless.
const minStickySecretLen = 16

// stickySecret reads and checks the secret that keys the sticky cookie's
// backend ids: a regular file, readable by its owner only, holding at
// least minStickySecretLen bytes once a final newline ("\n" or "\r\n")
// is dropped. Any bytes will do (head -c 32 /dev/urandom is fine);
// nothing else is trimmed, so that every node reads the same secret from
// the same file. The secret never appears in a message.
func (p *parser) stickySecret(n *yaml.Node, path, file string) []byte {
	data, ok := p.readSecretFile(n, path, file, "sticky secret", "secret")
	if !ok {
		return nil
	}
	secret := bytes.TrimSuffix(data, []byte("\n"))
	if len(secret) < len(data) {
		secret = bytes.TrimSuffix(secret, []byte("\r"))
	}
	switch {
	case len(secret) == 0:
		p.errorf(n, path, "%s holds no secret; write one of at least %d bytes to it (%s), the same file on every weir node",
			quote(file), minStickySecretLen, tokenHint)
		return nil
	case len(secret) < minStickySecretLen:
		p.errorf(n, path, "the secret in %s is %d bytes, shorter than the %d a secret must have not to be guessed; write a longer one (%s)",
			quote(file), len(secret), minStickySecretLen, tokenHint)
		return nil
	}
	return secret
}

// sendProxyProtocol reads a pool's proxy_protocol key. An l4 service can
// send the header only from user space, and over TCP: the bpf data plane
// forwards packets without touching the stream.
func (p *parser) sendProxyProtocol(m *mapping, u *Upstream, l4 *L4) {
	if !enumField(m, "proxy_protocol", &u.ProxyProtocol, ProxyV1, ProxyV2) || l4 == nil {
		return
	}
	n, path := m.keys["proxy_protocol"], m.at("proxy_protocol")
	switch {
	case l4.Protocol == ProtocolUDP:
		p.errorf(n, path, "weir sends a PROXY header at the start of a TCP connection, and this service balances udp; remove proxy_protocol")
	case l4.Dataplane == DataplaneBPF:
		p.errorf(n, path, "the bpf data plane forwards packets untouched and cannot add a PROXY header; set dataplane: userspace, or remove proxy_protocol")
	case l4.Dataplane == DataplaneAuto:
		p.errorf(n, path, "with dataplane: auto (the default) connections may be forwarded in eBPF, which cannot add a PROXY header; set dataplane: userspace")
	}
}

// listenerProxyProtocol reads the proxy_protocol mapping of a listener.
func (p *parser) listenerProxyProtocol(n *yaml.Node, path string) *proxyproto.Policy {
	m := p.mapping(n, path, []string{"trusted", "timeout"})
	if m == nil {
		return nil
	}
	pp := &proxyproto.Policy{Timeout: DefaultProxyProtocolTimeout}
	const example = `trusted: ["10.0.0.0/8", "192.0.2.7"]`
	items, ok := m.list("trusted", example)
	switch {
	case !ok && !m.has("trusted"):
		m.missing("trusted", "list the peers that send PROXY headers, as in "+example+"; trusting any peer would let every client forge its address")
	case ok && len(items) == 0:
		p.errorf(m.get("trusted"), m.at("trusted"), "the list is empty; give at least one address or prefix, as in %s", example)
	}
	seen := make(map[netip.Prefix]Position)
	for i, item := range items {
		ipath := fmt.Sprintf("%s[%d]", m.at("trusted"), i)
		s, ok := p.str(item, ipath)
		if !ok {
			continue
		}
		pf, err := parseTrusted(s)
		if err != nil {
			p.errorf(item, ipath, "%v", err)
			continue
		}
		if first, dup := seen[pf]; dup {
			p.errorf(item, ipath, "%s is listed twice (first at %s); remove one", pf, first)
			continue
		}
		seen[pf] = p.pos(item)
		pp.Trusted = append(pp.Trusted, pf)
	}
	m.duration("timeout", &pp.Timeout, true)
	return pp
}

// parseTrusted parses a trusted peer: a CIDR prefix, or an address, which
// stands for itself alone.
func parseTrusted(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s is not a CIDR prefix or an IP address, such as 10.0.0.0/8 or 192.0.2.7", quote(s))
		}
		if masked := pf.Masked(); masked != pf {
			return netip.Prefix{}, fmt.Errorf("%s has address bits set beyond /%d; did you mean %s?", quote(s), pf.Bits(), masked)
		}
		return pf, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%s is not a CIDR prefix or an IP address, such as 10.0.0.0/8 or 192.0.2.7", quote(s))
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
