package l7

import (
	"crypto/x509"
	"strings"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/proxyproto"
	"github.com/weir-lb/weir/pkg/retry"
)

// ALPN says which HTTP versions to offer an upstream over TLS, or to
// speak over plain TCP.
type ALPN uint8

const (
	// ALPNH1 offers HTTP/1.1 only.
	ALPNH1 ALPN = iota
	// ALPNH2 offers HTTP/2 only.
	ALPNH2
	// ALPNH2H1 offers HTTP/2 and falls back to HTTP/1.1.
	ALPNH2H1
	// ALPNH2C speaks HTTP/2 with prior knowledge over plain TCP (h2c,
	// RFC 9113 §3.3): no TLS, no Upgrade, the connection preface at once.
	// It is what a plaintext gRPC backend needs. On a peer with TLS set
	// it means ALPNH2.
	ALPNH2C
)

func (a ALPN) protos() []string {
	switch a {
	case ALPNH2, ALPNH2C:
		return []string{"h2"}
	case ALPNH2H1:
		return []string{"h2", "http/1.1"}
	}
	return []string{"http/1.1"}
}

// String returns the config spelling: h1, h2, h2h1 or h2c.
func (a ALPN) String() string {
	switch a {
	case ALPNH2:
		return "h2"
	case ALPNH2C:
		return "h2c"
	case ALPNH2H1:
		return "h2h1"
	}
	return "h1"
}

// Timeouts bound the phases of talking to an upstream. Zero means the
// default noted on each field.
type Timeouts struct {
	Connect time.Duration // TCP connect plus TLS handshake; default 2s
	Read    time.Duration // first response byte, and each read after; default 60s
	Write   time.Duration // each write of the request; default 60s
	Idle    time.Duration // how long a pooled connection may sit unused; default 60s
}

func (t Timeouts) withDefaults() Timeouts {
	t.Connect = orDefault(t.Connect, 2*time.Second)
	t.Read = orDefault(t.Read, 60*time.Second)
	t.Write = orDefault(t.Write, 60*time.Second)
	t.Idle = orDefault(t.Idle, 60*time.Second)
	return t
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Peer is one upstream server to send a request to.
type Peer struct {
	// Addr is "host:port" or "unix:/path", as in lb.Backend.Addr.
	Addr string
	// TLS enables TLS to the upstream.
	TLS bool
	// SNI is the server name sent in the TLS handshake and verified in
	// the certificate. Empty: none is sent, and verification, if on,
	// checks the certificate against the address's host.
	SNI string
	// InsecureSkipVerify turns certificate verification off.
	InsecureSkipVerify bool
	// RootCAs verifies the upstream's certificate; nil means the system
	// roots.
	RootCAs *x509.CertPool
	// ALPN chooses the HTTP versions offered over TLS; on a plain peer,
	// ALPNH2 or ALPNH2C mean prior-knowledge HTTP/2 (h2c).
	ALPN ALPN
	// Timeouts for this peer.
	Timeouts Timeouts
	// ProxyProtocol, when not 0, is the PROXY protocol version (1 or 2)
	// with which every new connection to the peer begins, before TLS:
	// it announces the downstream client's address and the one it
	// connected to. Such a connection serves that client's downstream
	// connection only, and closes with it.
	ProxyProtocol proxyproto.Version
	// Backend, when the peer came from a load balancer, is told when a
	// request starts and ends (least-loaded selection reads that) and is
	// excluded from this request's retries.
	Backend *lb.Backend
	// Retry, when not nil, is the retry policy of the requests whose
	// first attempt goes to this peer (shared by every peer of a pool or
	// route, and its budget with them): which failed attempts are tried
	// again, on another peer when there is one. Nil: only connection
	// failures are retried, Session.MaxRetries times.
	Retry *retry.Policy
}

// upstreamHost returns the Host sent to the upstream at addr (a
// Peer.Addr) with a request that names none, as an HTTP/1.0 one may: its
// address, as NGINX's default "proxy_set_header Host $proxy_host" sends,
// or "localhost" for a Unix socket, whose path is no host.
func upstreamHost(addr string) string {
	if strings.HasPrefix(addr, "unix:") {
		return "localhost"
	}
	return addr
}

// network and dialAddr split Addr for net.Dial.
func (p *Peer) network() string {
	if strings.HasPrefix(p.Addr, "unix:") {
		return "unix"
	}
	return "tcp"
}

func (p *Peer) dialAddr() string {
	return strings.TrimPrefix(p.Addr, "unix:")
}

// poolKey identifies the upstream connections a Peer may reuse. It holds
// every setting that changes what the connection is, not only the
// address: a connection made with one SNI must not serve another.
type poolKey struct {
	addr     string
	sni      string
	tls      bool
	insecure bool
	roots    *x509.CertPool
	alpn     ALPN
	proxy    proxyproto.Version
	// owner, with proxy set, is the downstream connection the
	// connections announce: they are private to it.
	owner *announcer
}

func (p *Peer) key() poolKey {
	return poolKey{addr: p.Addr, sni: p.SNI, tls: p.TLS, insecure: p.InsecureSkipVerify, roots: p.RootCAs, alpn: p.ALPN, proxy: p.ProxyProtocol}
}

// shared returns the key without its owner: what holds for every
// connection to the peer, such as the HTTP version it chose.
func (k poolKey) shared() poolKey {
	k.owner = nil
	return k
}
