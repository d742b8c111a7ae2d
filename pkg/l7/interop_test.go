package l7

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// clientRecorder is a Balanced that records each request's Session.Client.
type clientRecorder struct {
	*Balanced
	mu      sync.Mutex
	clients []netip.AddrPort
}

func (r *clientRecorder) UpstreamPeer(s *Session) (*Peer, error) {
	r.mu.Lock()
	r.clients = append(r.clients, s.Client)
	r.mu.Unlock()
	return r.Balanced.UpstreamPeer(s)
}

func (r *clientRecorder) sawExactly(ap netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.clients, ap)
}

func (r *clientRecorder) saw(a netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clients {
		if c.Addr() == a {
			return true
		}
	}
	return false
}

func (r *clientRecorder) seen() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]netip.AddrPort(nil), r.clients...)
}

// clientFrom returns an HTTP client whose connections come from the
// loopback address from, and a function returning the address of the
// last one it opened.
func clientFrom(from string) (*http.Client, func() string) {
	var mu sync.Mutex
	var local string
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			local = c.LocalAddr().String()
			mu.Unlock()
		}
		return c, err
	}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return local
	}
}

func getBody(t testing.TB, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, b, err)
	}
	return string(b)
}

// TestHAProxySendsProxyProtocol puts a real HAProxy, in TCP mode with
// send-proxy or send-proxy-v2, in front of a server that trusts it: the
// server sees the client behind HAProxy (at 127.0.0.7), not HAProxy.
func TestHAProxySendsProxyProtocol(t *testing.T) {
	backend := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	})
	for _, send := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(send, func(t *testing.T) {
			rec := &clientRecorder{Balanced: &Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend.addr)}}
			// HAProxy connects from 127.0.0.1: only it is trusted.
			srv := &Server{Proxy: rec, ProxyProtocol: &proxyproto.Policy{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
			weir := startProxy(t, srv)
			front := testenv.FreePort(t)
			testenv.HAProxy(t, fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind %s
    default_backend be
backend be
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host weir.test
    server weir %s %s check check-send-proxy inter 100ms
`, front, weir, send), front)
			client, local := clientFrom("127.0.0.7")
			for i := range 2 {
				if got := getBody(t, client, "http://"+front+"/"); got != "127.0.0.7" {
					t.Errorf("request %d: X-Forwarded-For at the backend = %q, want 127.0.0.7", i, got)
				}
				// (HAProxy's health checks are recorded too, in between.)
				if want := netip.MustParseAddrPort(local()); !rec.sawExactly(want) {
					t.Errorf("request %d: Session.Client was never the client's %s: %v", i, want, rec.seen())
				}
			}
			// HAProxy's health checks announce themselves too (v2: as
			// LOCAL), and are served with HAProxy's own address.
			deadline := time.Now().Add(10 * time.Second)
			for !rec.saw(netip.MustParseAddr("127.0.0.1")) {
				if time.Now().After(deadline) {
					t.Fatalf("no health check from HAProxy served in 10 s; clients seen: %v", rec.seen())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestNGINXReceivesProxyProtocol sends the PROXY protocol, versions 1 and
// 2, to a real NGINX listening with proxy_protocol, which answers the
// addresses it was told: those of the client (at 127.0.0.7 and
// 127.0.0.8, taking turns on keep-alive connections) and of weir.
func TestNGINXReceivesProxyProtocol(t *testing.T) {
	upstream := testenv.NGINXProxyProtocol(t)
	for _, v := range []proxyproto.Version{proxyproto.V1, proxyproto.V2} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			srv := &Server{Proxy: &Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, upstream),
				Template: Peer{ProxyProtocol: v}}}
			weir := startProxy(t, srv)
			type client struct {
				from  string
				c     *http.Client
				local func() string
			}
			var clients []client
			for _, from := range []string{"127.0.0.7", "127.0.0.8"} {
				c, local := clientFrom(from)
				clients = append(clients, client{from, c, local})
				t.Cleanup(c.CloseIdleConnections)
			}
			for round := range 3 {
				for _, c := range clients {
					got := getBody(t, c.c, "http://"+weir+"/")
					if want := c.local() + " " + weir; got != want {
						t.Errorf("round %d, client %s: NGINX was told %q, want %q", round, c.from, got, want)
					}
				}
			}
		})
	}
}
