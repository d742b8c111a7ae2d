package config

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// minTokenLen is the shortest admin token accepted, in bytes once
// surrounding whitespace is trimmed: short enough for any generator,
// long enough that guessing it over the network is hopeless.
const minTokenLen = 16

// tokenHint says how to make a good token.
const tokenHint = "head -c 32 /dev/urandom | base64"

// adminListenWant describes the accepted admin addresses in messages.
const adminListenWant = `127.0.0.1:PORT, [::1]:PORT, another ip:port (with token_file) or unix:/absolute/path`

// admin reads the admin mapping. It runs once the services are read, so
// that an admin address can be checked against their addresses (in
// p.claims); upgradeSock is the resolved upgrade_sock, which an admin
// socket must not take.
func (p *parser) admin(n *yaml.Node, upgradeSock string) *Admin {
	m := p.mapping(n, "admin", []string{"listen", "token_file"})
	if m == nil {
		return nil
	}
	a := &Admin{Pos: p.pos(m.node)}
	if m.file("token_file", &a.TokenFile) {
		p.checkTokenFile(m.get("token_file"), m.at("token_file"), a.TokenFile)
	}
	a.Listen = p.adminListen(m, upgradeSock)
	return a
}

// adminListen reads admin.listen: one address or a list of them, at
// least one. Each is checked on its own, against the others, and against
// the services' addresses.
func (p *parser) adminListen(m *mapping, upgradeSock string) []AdminListen {
	const example = `listen: "127.0.0.1:9090"`
	n := m.get("listen")
	if n == nil {
		m.missing("listen", "give the address to serve the admin endpoint on, as in "+example)
		return nil
	}
	type entry struct {
		node *yaml.Node
		path string
	}
	var entries []entry
	switch n.Kind {
	case yaml.ScalarNode:
		entries = []entry{{n, m.at("listen")}}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			p.errorf(n, m.at("listen"), "the list is empty; give at least one address, as in %s", example)
			return nil
		}
		for i, item := range n.Content {
			entries = append(entries, entry{resolve(item), fmt.Sprintf("%s[%d]", m.at("listen"), i)})
		}
	default:
		p.wrongType(n, m.at("listen"), "an address or a list of addresses")
		return nil
	}
	var out []AdminListen
	for _, e := range entries {
		s, ok := p.str(e.node, e.path)
		if !ok {
			continue
		}
		l, err := adminAddr(s)
		if err != nil {
			p.errorf(e.node, e.path, "%v", err)
			continue
		}
		l.Pos = p.pos(e.node)
		if !p.adminAddrFree(l, e.path, out, upgradeSock) {
			continue
		}
		if !l.Loopback() && !m.has("token_file") {
			p.errorf(e.node, e.path, "%s is reachable from other hosts and no token_file is set: the admin API can drain backends, and anyone who can reach it could; listen on 127.0.0.1, [::1] or a unix: socket, or set token_file to a file holding a secret token",
				l.Addr)
		}
		out = append(out, l)
	}
	return out
}

// adminAddr validates and normalises one admin address: "unix:/path",
// or an IP literal and port.
func adminAddr(s string) (AdminListen, error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		switch {
		case path == "":
			return AdminListen{}, fmt.Errorf("%s names no socket; write unix:/absolute/path, as in unix:/run/weir/admin.sock", quote(s))
		case !filepath.IsAbs(path):
			return AdminListen{}, fmt.Errorf("%s: the socket path is relative; give an absolute one, as in unix:/run/weir/admin.sock (a relative path would depend on the directory weir runs in)", quote(s))
		}
		path = filepath.Clean(path)
		if len(path) > maxUnixSocketPath {
			return AdminListen{}, fmt.Errorf("socket path %s is %d bytes long, and a Unix socket path is at most %d; choose a shorter one", quote(path), len(path), maxUnixSocketPath)
		}
		return AdminListen{Network: "unix", Addr: path}, nil
	}
	if strings.HasPrefix(s, "/") {
		return AdminListen{}, fmt.Errorf("%s: write unix:%s to serve on a Unix socket", quote(s), clip(s))
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return AdminListen{}, fmt.Errorf("%s is not an address; want %s", quote(s), adminListenWant)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return AdminListen{}, fmt.Errorf("%s: port must be 1 to 65535", quote(s))
	}
	if host == "" {
		return AdminListen{}, fmt.Errorf("%s has no IP address; write 127.0.0.1:%s to serve this host only", quote(s), port)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if strings.EqualFold(host, "localhost") {
			return AdminListen{}, fmt.Errorf("%s: give an IP address, not a host name: 127.0.0.1:%s or [::1]:%s", quote(s), port, port)
		}
		return AdminListen{}, fmt.Errorf("%s: %s is not an IP address; give an IP address, such as 127.0.0.1 or [::1] (a host name may resolve to other addresses from one start to the next)", quote(s), quote(host))
	}
	return AdminListen{Network: "tcp", Addr: netip.AddrPortFrom(ip, uint16(pn)).String()}, nil
}

// adminAddrFree reports whether l is free for the admin endpoint, and
// says at path why not: an earlier admin address, a service or the
// upgrade socket takes it. An admin address must never be reachable
// through a service, so a wildcard and a specific address on one port
// clash too.
func (p *parser) adminAddrFree(l AdminListen, path string, earlier []AdminListen, upgradeSock string) bool {
	if l.Network == "unix" {
		for _, e := range earlier {
			if e.Network == "unix" && e.Addr == l.Addr {
				p.errorAt(l.Pos, path, "%s is listed twice (first at %s); remove one", quote("unix:"+l.Addr), e.Pos)
				return false
			}
		}
		if l.Addr == filepath.Clean(upgradeSock) {
			p.errorAt(l.Pos, path, "%s is the upgrade_sock, over which weir hands its sockets to a new process; give the admin endpoint a socket of its own", quote(l.Addr))
			return false
		}
		return true
	}
	ap := netip.MustParseAddrPort(l.Addr)
	for _, e := range earlier {
		if e.Network != "tcp" {
			continue
		}
		switch other := netip.MustParseAddrPort(e.Addr); {
		case other == ap:
			p.errorAt(l.Pos, path, "%s is listed twice (first at %s); remove one", l.Addr, e.Pos)
			return false
		case overlap(ap, other):
			p.errorAt(l.Pos, path, "%s overlaps %s (at %s): a wildcard address takes its port on every address; keep one of them", l.Addr, e.Addr, e.Pos)
			return false
		}
	}
	// The services' TCP addresses, the first in the file first, so that
	// the message is the same from one run to the next.
	type use struct {
		claim
		addr netip.AddrPort
	}
	var taken []use
	for key, c := range p.claims {
		addr, ok := strings.CutPrefix(key, "tcp ")
		if !ok {
			continue
		}
		if other, err := netip.ParseAddrPort(addr); err == nil && overlap(ap, other) {
			taken = append(taken, use{c, other})
		}
	}
	if len(taken) == 0 {
		return true
	}
	c := slices.MinFunc(taken, func(a, b use) int {
		return cmp.Or(cmp.Compare(a.pos.Line, b.pos.Line), cmp.Compare(a.pos.Col, b.pos.Col))
	})
	const why = "the admin endpoint must never be reachable through a service, so give it a port of its own"
	if c.addr == ap {
		p.errorAt(l.Pos, path, "%s already used by service %s at %s; %s", l.Addr, clip(c.service), c.pos, why)
	} else {
		p.errorAt(l.Pos, path, "%s overlaps %s of service %s at %s (a wildcard address takes its port on every address); %s",
			l.Addr, c.what, clip(c.service), c.pos, why)
	}
	return false
}

// overlap reports whether listening on a and on b would share
// connections: the same address and port, or a wildcard and an address
// it covers on the same port. [::] covers IPv4 too, as Go listens on
// both families there.
func overlap(a, b netip.AddrPort) bool {
	if a.Port() != b.Port() {
		return false
	}
	x, y := a.Addr().Unmap(), b.Addr().Unmap()
	switch {
	case x == y:
		return true
	case x == netip.IPv6Unspecified() || y == netip.IPv6Unspecified():
		return true
	case x == netip.IPv4Unspecified():
		return y.Is4()
	case y == netip.IPv4Unspecified():
		return x.Is4()
	}
	return false
}

// checkTokenFile checks the admin token file at check time: a regular
// file, readable by its owner only, holding a token of at least
// minTokenLen printable bytes (surrounding whitespace, such as the final
// newline, does not count). The token itself never appears in a message.
func (p *parser) checkTokenFile(n *yaml.Node, path, file string) {
	data, ok := p.readSecretFile(n, path, file, "admin token", "token")
	if !ok {
		return
	}
	token := bytes.TrimSpace(data)
	switch {
	case len(token) == 0:
		p.errorf(n, path, "%s holds no token; write one of at least %d bytes to it (%s)", quote(file), minTokenLen, tokenHint)
		return
	case len(token) < minTokenLen:
		p.errorf(n, path, "the token in %s is %d bytes, shorter than the %d a token must have not to be guessed; write a longer one (%s)",
			quote(file), len(token), minTokenLen, tokenHint)
		return
	}
	for i, c := range token {
		if c < 0x21 || c > 0x7e {
			p.errorf(n, path, "the token in %s has byte %#02x at offset %d; an HTTP header carries printable ASCII only, so no client could present it (%s)",
				quote(file), c, i, tokenHint)
			return
		}
	}
}

// readSecretFile reads file, which holds a secret (what names the file's
// role, as in "admin token"; noun its content, as in "token"), and
// reports a file that users other than its owner may read or change: the
// data is returned all the same, so that its content is checked too.
func (p *parser) readSecretFile(n *yaml.Node, path, file, what, noun string) ([]byte, bool) {
	data, ok := p.readNamed(n, path, file, what)
	if !ok {
		return nil, false
	}
	if info, err := os.Stat(file); err == nil && info.Mode().Perm()&0o077 != 0 {
		p.errorf(n, path, "%s has mode %04o: users other than its owner may read or change the %s; run chmod 600 %s",
			quote(file), info.Mode().Perm(), noun, clip(file))
	}
	return data, true
}
