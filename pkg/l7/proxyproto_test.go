package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/proxyproto"
	"golang.org/x/net/http2"
)

// clientEcho answers every request with its Session.Client, and counts
// the requests it served.
type clientEcho struct {
	mu     sync.Mutex
	served int
}

func (*clientEcho) UpstreamPeer(*Session) (*Peer, error) { return nil, errors.New("unused") }

func (e *clientEcho) RequestFilter(s *Session) (bool, error) {
	e.mu.Lock()
	e.served++
	e.mu.Unlock()
	return true, s.Respond(200, nil, []byte(s.Client.String()))
}

func (e *clientEcho) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.served
}

func ppHeader(t testing.TB, v proxyproto.Version, src, dst string) []byte {
	t.Helper()
	h := proxyproto.Proxied(v, netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst))
	b, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dialFrom connects to addr from the loopback address from (any port).
func dialFrom(t testing.TB, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

const getRequest = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

// TestProxyProtocolInbound checks what a server with a PROXY protocol
// policy makes of each kind of connection: a trusted balancer's header
// names the client; a trusted connection without a valid header is
// closed unserved; an untrusted one is read as plain HTTP, so a header
// in it is refused as a bad request.
func TestProxyProtocolInbound(t *testing.T) {
	const client = "203.0.113.7:4000"
	v1 := ppHeader(t, proxyproto.V1, client, "198.51.100.1:80")
	v2 := ppHeader(t, proxyproto.V2, client, "198.51.100.1:80")
	local, _ := proxyproto.Header{Version: proxyproto.V2, Command: proxyproto.Local}.Append(nil)
	tests := []struct {
		name    string
		trusted string // the policy's network
		send    []byte
		want    string // the body, "own" for the connection's own address, "" for closed unanswered
		status  int
	}{
		{"v1", "127.0.0.0/8", v1, client, 200},
		{"v2", "127.0.0.0/8", v2, client, 200},
		{"v2 with extensions", "127.0.0.0/8", append(append([]byte{}, "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x11\xcb\x00\x71\x07\xc6\x33\x64\x01\x0f\xa0\x00\x50"...), "\x04\x00\x02ab\x00"[:5]...), client, 200},
		{"v2 local", "127.0.0.0/8", local, "own", 200},
		{"v1 unknown", "127.0.0.0/8", []byte("PROXY UNKNOWN\r\n"), "own", 200},
		{"trusted without header", "127.0.0.0/8", nil, "", 0},
		{"trusted with bad header", "127.0.0.0/8", []byte("PROXY TCP4 203.0.113.7 198.51.100.1 4000 99999\r\n"), "", 0},
		{"untrusted without header", "10.0.0.0/8", nil, "own", 200},
		{"untrusted v1", "10.0.0.0/8", v1, "", 400},
		{"untrusted v2", "10.0.0.0/8", v2, "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			echo := &clientEcho{}
			srv := &Server{Proxy: echo, ProxyProtocol: &proxyproto.Policy{Trusted: []netip.Prefix{netip.MustParsePrefix(tc.trusted)}}}
			addr := startProxy(t, srv)
			c := dialFrom(t, "127.0.0.7", addr)
			if _, err := c.Write(append(tc.send, getRequest...)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if tc.status == 0 {
				if err == nil {
					t.Fatalf("got %s, want the connection closed unanswered", resp.Status)
				}
				if echo.count() != 0 {
					t.Fatal("the request was served")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			want := tc.want
			if want == "own" {
				want = c.LocalAddr().String()
			}
			if tc.status == 200 && string(body) != want {
				t.Errorf("Session.Client = %q, want %q", body, want)
			}
			if tc.status != 200 && echo.count() != 0 {
				t.Errorf("a refused request was served")
			}
		})
	}
}

// TestProxyProtocolInboundTimeout checks that a trusted connection that
// sends nothing is closed once the policy's timeout passed.
func TestProxyProtocolInboundTimeout(t *testing.T) {
	srv := &Server{Proxy: &clientEcho{}, ProxyProtocol: &proxyproto.Policy{
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Timeout: 100 * time.Millisecond}}
	c := dialFrom(t, "127.0.0.7", startProxy(t, srv))
	c.Write([]byte("PROXY TCP4 1.2.3.4")) // and then nothing
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes, want the connection closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept the connection past its header timeout")
	}
}

// TestProxyProtocolInboundTLS checks that the header comes before the TLS
// handshake, and that an untrusted client's header fails the handshake.
func TestProxyProtocolInboundTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprint("trusted=", trusted), func(t *testing.T) {
			prefix := "10.0.0.0/8"
			if trusted {
				prefix = "127.0.0.0/8"
			}
			echo := &clientEcho{}
			srv := &Server{Proxy: echo, ProxyProtocol: &proxyproto.Policy{Trusted: []netip.Prefix{netip.MustParsePrefix(prefix)}}}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := serveOn(t, srv, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pki.cert(t, "weir.test")}, NextProtos: []string{"h2", "http/1.1"}}))
			for _, proto := range []string{"http/1.1", "h2"} {
				c := dialFrom(t, "127.0.0.7", addr)
				c.Write(ppHeader(t, proxyproto.V2, "[2001:db8::7]:4000", "[2001:db8::1]:443"))
				tc := tls.Client(c, &tls.Config{ServerName: "weir.test", RootCAs: pki.roots, NextProtos: []string{proto}})
				err := tc.Handshake()
				if !trusted {
					if err == nil {
						t.Fatal("TLS handshake after an untrusted PROXY header succeeded")
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				var got string
				if proto == "h2" {
					cc, err := (&http2.Transport{}).NewClientConn(tc)
					if err != nil {
						t.Fatal(err)
					}
					req, _ := http.NewRequest("GET", "https://weir.test/", nil)
					resp, err := cc.RoundTrip(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					cc.Close()
					got = string(b)
				} else {
					tc.Write([]byte(getRequest))
					resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got = string(b)
				}
				if got != "[2001:db8::7]:4000" {
					t.Errorf("%s: Session.Client = %q, want the header's", proto, got)
				}
			}
			if !trusted && echo.count() != 0 {
				t.Error("an untrusted connection with a header was served")
			}
		})
	}
}

// TestProxyProtocolForwardedFor checks that the header's client is the
// one X-Forwarded-For names upstream.
func TestProxyProtocolForwardedFor(t *testing.T) {
	backend := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	})
	srv := &Server{Proxy: &Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend.addr)},
		ProxyProtocol: &proxyproto.Policy{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.7/32")}}}
	c := dialFrom(t, "127.0.0.7", startProxy(t, srv))
	c.Write(append(ppHeader(t, proxyproto.V1, "203.0.113.9:1234", "127.0.0.1:80"), getRequest...))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "203.0.113.9" {
		t.Errorf("X-Forwarded-For = %q, want 203.0.113.9", b)
	}
}

// ppOrigin is an upstream behind the PROXY protocol: every connection
// must begin with a header, and every response body is the header's
// source and destination. It counts its connections.
type ppOrigin struct {
	addr  string
	mu    sync.Mutex
	conns int
}

type ppConn struct {
	net.Conn
	h proxyproto.Header
}

type ppCtxKey struct{}

type ppListener struct {
	net.Listener
	o *ppOrigin
}

func (l ppListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, err := proxyproto.Read(c)
		c.SetReadDeadline(time.Time{})
		if err != nil {
			c.Close()
			continue
		}
		l.o.mu.Lock()
		l.o.conns++
		l.o.mu.Unlock()
		return &ppConn{Conn: c, h: h}, nil
	}
}

func startPPOrigin(t testing.TB, cfg *tls.Config) *ppOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &ppOrigin{addr: ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Context().Value(ppCtxKey{}).(proxyproto.Header)
			fmt.Fprintf(w, "%v %v", h.Source, h.Destination)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			return context.WithValue(ctx, ppCtxKey{}, c.(*ppConn).h)
		},
	}
	if cfg != nil {
		srv.TLSConfig = cfg
		go srv.ServeTLS(ppListener{ln, o}, "", "")
	} else {
		go srv.Serve(ppListener{ln, o})
	}
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *ppOrigin) connections() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.conns
}

// TestProxyProtocolOutbound checks that every upstream connection
// announces the client whose requests it carries: clients taking turns
// on keep-alive connections each get their own upstream connections,
// reused for them only, and closed when they leave.
func TestProxyProtocolOutbound(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name string
		v    proxyproto.Version
		tls  bool
		alpn ALPN
	}{
		{"v1", proxyproto.V1, false, ALPNH1},
		{"v2", proxyproto.V2, false, ALPNH1},
		{"v2 tls", proxyproto.V2, true, ALPNH1},
		{"v1 tls h2", proxyproto.V1, true, ALPNH2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg *tls.Config
			if tc.tls {
				cfg = &tls.Config{Certificates: []tls.Certificate{pki.cert(t, "backend.internal")}}
			}
			o := startPPOrigin(t, cfg)
			peer := Peer{ProxyProtocol: tc.v, TLS: tc.tls, SNI: "backend.internal", RootCAs: pki.roots, ALPN: tc.alpn}
			srv := &Server{Proxy: &Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr), Template: peer}}
			addr := startProxy(t, srv)
			clients := []net.Conn{dialFrom(t, "127.0.0.7", addr), dialFrom(t, "127.0.0.8", addr)}
			readers := []*bufio.Reader{bufio.NewReader(clients[0]), bufio.NewReader(clients[1])}
			for round := range 3 {
				for i, c := range clients {
					c.Write([]byte(getRequest))
					resp, err := http.ReadResponse(readers[i], nil)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					want := c.LocalAddr().String() + " " + c.RemoteAddr().String()
					if string(b) != want {
						t.Fatalf("round %d, client %d: upstream announced %q, want %q", round, i, b, want)
					}
				}
			}
			if n := o.connections(); n != len(clients) {
				t.Errorf("%d upstream connections for %d clients, want one each, reused", n, len(clients))
			}
			for _, c := range clients {
				c.Close()
			}
			// The clients gone, their private connections go too.
			deadline := time.Now().Add(5 * time.Second)
			for srv.Pool.Idle() != 0 || srv.Pool.h2Count() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d idle and %d HTTP/2 upstream connections outlived their clients", srv.Pool.Idle(), srv.Pool.h2Count())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func (p *Pool) h2Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.h2)
}

// TestPoolPrivateBound checks that a downstream connection keeps at most
// maxPrivateIdle idle connections per peer, that they are released with
// it, and that one returned after that is closed.
func TestPoolPrivateBound(t *testing.T) {
	p := NewPool(128)
	a := &announcer{src: netip.MustParseAddrPort("127.0.0.7:1"), dst: netip.MustParseAddrPort("127.0.0.1:2")}
	key := poolKey{addr: "127.0.0.1:9", proxy: proxyproto.V2, owner: a}
	newConn := func() (*upstreamConn, net.Conn) {
		c1, c2 := net.Pipe()
		t.Cleanup(func() { c2.Close() })
		uc := newUpstreamConn(c1, c1, key)
		uc.unshed(&p.bufs)
		return uc, c2
	}
	var others []net.Conn
	for range 2 * maxPrivateIdle {
		uc, other := newConn()
		others = append(others, other)
		p.put(uc)
	}
	if n := p.Idle(); n != maxPrivateIdle {
		t.Fatalf("%d idle private connections, want %d", n, maxPrivateIdle)
	}
	if got := p.get(poolKey{addr: key.addr, proxy: key.proxy, owner: &announcer{}}, time.Minute); got != nil {
		t.Fatal("another downstream connection got a private connection")
	}
	p.release(a)
	if n := p.Idle(); n != 0 {
		t.Fatalf("%d idle connections after release, want 0", n)
	}
	uc, other := newConn()
	p.put(uc)
	if n := p.Idle(); n != 0 {
		t.Fatalf("a connection put after release was kept")
	}
	// Every connection, kept or not, has been closed.
	for _, c := range append(others, other) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("connection not closed: %v", err)
		}
	}
	if len(p.idle) != 0 {
		t.Errorf("the pool keeps %d keys of a released connection", len(p.idle))
	}
}
