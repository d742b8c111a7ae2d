package l7

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/weir-lb/weir/pkg/proxyproto"
)

// The PROXY protocol, both ways: a connection from a balancer the
// server's Policy trusts begins with a header naming the real client
// (readProxyHeader), and a Peer with a ProxyProtocol version gets one on
// every new connection (announce).

// readProxyHeader reads the PROXY protocol header that a trusted
// balancer's connection begins with, on the connection's own goroutine and
// before any TLS, and makes the client it names the connection's client.
// A LOCAL header (the balancer's own health check) or one without
// addresses keeps the connection's. Without a valid header in time the
// connection is closed: false.
func (c *conn) readProxyHeader(pp *proxyproto.Policy) bool {
	raw := c.c
	if tc, ok := raw.(*tls.Conn); ok {
		raw = tc.NetConn() // the header comes before the handshake
	}
	raw.SetReadDeadline(time.Now().Add(pp.HeaderTimeout()))
	h, err := proxyproto.Read(raw)
	if err != nil {
		// The balancer's fault, or the client's behind it: not weir's.
		c.srv.Logger.Info("connection closed: no valid PROXY protocol header from a trusted balancer",
			"service", c.srv.Name, "balancer", c.remote, "err", err)
		return false
	}
	raw.SetReadDeadline(time.Time{})
	if h.HasAddrs() {
		c.remote = netip.AddrPortFrom(h.Source.Addr().Unmap(), h.Source.Port())
		c.ann.dst = netip.AddrPortFrom(h.Destination.Addr().Unmap(), h.Destination.Port())
	}
	return true
}

// announcer is a downstream connection whose client new upstream
// connections announce with the PROXY protocol. Such an upstream
// connection tells its upstream who the client is once, at its start: it
// may carry that client's requests only. So it is pooled under a key
// holding its announcer, and closed when the announcer ends.
type announcer struct {
	// src is the client's address, dst the one it connected to (as a
	// balancer in front announced them, if one did).
	src, dst netip.AddrPort
	// Guarded by Pool.mu: the keys under which the pool holds idle or
	// HTTP/2 connections of this announcer, and whether it ended.
	keys  []poolKey
	ended bool
}

// maxPrivateIdle bounds the idle upstream connections a downstream
// connection keeps per peer. An HTTP/1.1 client needs one at a time; an
// HTTP/2 client's concurrent streams towards an HTTP/1.1 upstream need a
// few. So the pool's private connections number at most this many per
// downstream connection and peer, and go with it.
const maxPrivateIdle = 4

// announcer returns the connection as the pool's private owner of the
// upstream connections that announce it. The connection's goroutine
// calls it, from a request or from serveH2.
func (c *conn) announcer() *announcer {
	if !c.announced {
		c.announced = true
		c.ann.src = c.remote
		if !c.ann.dst.IsValid() {
			c.ann.dst = localAddrPort(c.c)
		}
	}
	return &c.ann
}

func (st *h2Stream) announcer() *announcer { return st.hc.ann }

// localAddrPort returns the address nc was accepted on, unmapped.
func localAddrPort(nc net.Conn) netip.AddrPort {
	if a, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// poolKey returns the key of the upstream connections r may use to reach
// peer: when peer wants the PROXY protocol, those of r's client only.
func (r *request) poolKey(peer *Peer) poolKey {
	k := peer.key()
	if peer.ProxyProtocol != 0 {
		k.owner = r.down.announcer()
	}
	return k
}

// announce writes the PROXY protocol header first on raw, a new
// connection for key, before any TLS.
func announce(raw net.Conn, key poolKey, deadline time.Time) error {
	h := proxyproto.Proxied(key.proxy, key.owner.src, key.owner.dst)
	raw.SetWriteDeadline(deadline)
	if _, err := h.WriteTo(raw); err != nil {
		return fmt.Errorf("send PROXY protocol header: %w", err)
	}
	raw.SetWriteDeadline(time.Time{})
	return nil
}

// own records, with p.mu held, that the pool holds connections under the
// private key; false when its owner ended, and the caller must close them.
func (p *Pool) own(key poolKey) bool {
	a := key.owner
	if a.ended {
		return false
	}
	if !slices.Contains(a.keys, key) {
		a.keys = append(a.keys, key)
	}
	return true
}

// release closes the upstream connections private to a, which ended, and
// makes the pool close those returned later.
func (p *Pool) release(a *announcer) {
	p.mu.Lock()
	a.ended = true
	var idle []*upstreamConn
	var h2 []interface{ Close() error }
	for _, k := range a.keys {
		idle = append(idle, p.idle[k]...)
		delete(p.idle, k)
		if cc := p.h2[k]; cc != nil {
			h2 = append(h2, cc)
			delete(p.h2, k)
		}
	}
	a.keys = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	for _, cc := range h2 {
		cc.Close()
	}
}
