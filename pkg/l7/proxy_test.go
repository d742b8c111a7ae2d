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
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// origin is a test upstream: a net/http server on loopback that counts
// requests and records what it saw.
type origin struct {
	addr     string
	srv      *http.Server
	requests atomic.Int64
	mu       sync.Mutex
	lastReq  *http.Request
	sni      string
}

func startOrigin(t testing.TB, h http.HandlerFunc) *origin {
	t.Helper()
	return startOriginTLS(t, h, nil)
}

func startOriginTLS(t testing.TB, h http.HandlerFunc, cfg *tls.Config, configure ...func(*http.Server)) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &origin{addr: ln.Addr().String()}
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		o.mu.Lock()
		o.lastReq = r
		if r.TLS != nil {
			o.sni = r.TLS.ServerName
		}
		o.mu.Unlock()
		h(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	for _, f := range configure {
		f(o.srv)
	}
	if cfg != nil {
		// ServeTLS, not Serve on a TLS listener, so that the origin
		// offers HTTP/2 as well.
		o.srv.TLSConfig = cfg
		go o.srv.ServeTLS(ln, "", "")
	} else {
		go o.srv.Serve(ln)
	}
	t.Cleanup(func() { o.srv.Close() })
	return o
}

func (o *origin) last() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastReq
}

func hello(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "hello from %s", name)
	}
}

// startProxy serves p on a loopback port and returns its address.
func startProxy(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, srv, ln)
}

// serveOn serves srv on ln until the test ends, and returns ln's address.
// A server without an Observer gets a balance: every test, the hostile
// ones included, then also checks that every request started was
// reported done and every connection opened reported closed.
func serveOn(t testing.TB, srv *Server, ln net.Listener) string {
	t.Helper()
	if RouteEveryProxy != nil && srv.Proxy != nil {
		srv.Proxy = RouteEveryProxy(t, srv.Proxy)
	}
	var bal *balance
	if srv.Observer == nil {
		bal = &balance{}
		srv.Observer = bal
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if bal != nil {
			bal.check(t)
		}
	})
	return ln.Addr().String()
}

// balancedPool builds a running load balancer over addrs.
func balancedPool[A lb.Algorithm](t testing.TB, algo A, opts lb.Options, addrs ...string) *lb.LoadBalancer[A] {
	t.Helper()
	backends := make([]lb.Backend, len(addrs))
	for i, a := range addrs {
		backends[i] = lb.MustBackend(a, 1)
	}
	d, err := lb.NewStatic(backends...)
	if err != nil {
		t.Fatal(err)
	}
	opts.Discovery = d
	l, err := lb.New(algo, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestRoundRobinAlternates(t *testing.T) {
	a, b := startOrigin(t, hello("a")), startOrigin(t, hello("b"))
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, a.addr, b.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	c := newClient()
	var got []string
	for range 6 {
		code, body := get(t, c, "http://"+addr+"/")
		if code != 200 {
			t.Fatalf("status %d, body %q", code, body)
		}
		got = append(got, body)
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("round robin repeated a backend: %q", got)
		}
	}
}

func TestConsistentHashingIsSticky(t *testing.T) {
	names := []string{"a", "b", "c"}
	var addrs []string
	for _, n := range names {
		addrs = append(addrs, startOrigin(t, hello(n)).addr)
	}
	pool := balancedPool(t, lb.Ketama{}, lb.Options{}, addrs...)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Key: HashKey{Kind: KeyHeader, Name: "X-User"}}})
	c := newClient()
	seen := map[string]bool{}
	for u := range 30 {
		user := fmt.Sprintf("user-%d", u)
		_, first := get(t, c, "http://"+addr+"/", "X-User", user)
		for range 3 {
			if _, again := get(t, c, "http://"+addr+"/", "X-User", user); again != first {
				t.Fatalf("user %s went to %q then %q", user, first, again)
			}
		}
		seen[first] = true
	}
	if len(seen) != 3 {
		t.Fatalf("30 keys reached %d backends, want all 3", len(seen))
	}
}

func TestDeadBackendLeavesAndReturnsWithinOneInterval(t *testing.T) {
	const interval = 200 * time.Millisecond
	a := startOrigin(t, hello("a"))
	// b is a listener we can stop and start again on the same port.
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bAddr := bl.Addr().String()
	bSrv := &http.Server{Handler: hello("b")}
	go bSrv.Serve(bl)

	events := make(chan lb.Event, 16)
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{
		HealthCheck: &lb.TCPCheck{Timeout: 100 * time.Millisecond}, CheckInterval: interval,
		Observers: []lb.Observer{lb.ObserverFunc(func(e lb.Event) { events <- e })},
	}, a.addr, bAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pool.Run(ctx)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	c := newClient()

	bSrv.Close()
	stopped := time.Now()
	waitHealth(t, events, bAddr, false)
	if d := time.Since(stopped); d > interval+150*time.Millisecond {
		t.Fatalf("dead backend left the pool after %v, want within one interval (%v)", d, interval)
	}
	for range 6 {
		if code, body := get(t, c, "http://"+addr+"/"); code != 200 || body != "hello from a" {
			t.Fatalf("with b down got %d %q, want 200 from a", code, body)
		}
	}

	bl2, err := net.Listen("tcp", bAddr)
	if err != nil {
		t.Skipf("could not listen on %s again: %v", bAddr, err)
	}
	bSrv2 := &http.Server{Handler: hello("b")}
	go bSrv2.Serve(bl2)
	defer bSrv2.Close()
	restarted := time.Now()
	waitHealth(t, events, bAddr, true)
	if d := time.Since(restarted); d > interval+150*time.Millisecond {
		t.Fatalf("recovered backend returned after %v, want within one interval (%v)", d, interval)
	}
	seenB := false
	for range 4 {
		if _, body := get(t, c, "http://"+addr+"/"); body == "hello from b" {
			seenB = true
		}
	}
	if !seenB {
		t.Fatal("recovered backend b received no traffic")
	}
}

func waitHealth(t *testing.T, events <-chan lb.Event, addr string, healthy bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == lb.HealthChanged && e.Backend.Addr == addr && e.Healthy == healthy {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s to become healthy=%v", addr, healthy)
		}
	}
}

func TestForwardingHeadersAndHostRewrite(t *testing.T) {
	o := startOrigin(t, hello("o"))
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Host: "upstream.example"}})
	c := newClient()
	get(t, c, "http://"+addr+"/path?q=1", "Host", "front.example", "X-Forwarded-For", "203.0.113.9",
		"Connection", "X-Secret", "X-Secret", "hop only", "Keep-Alive", "timeout=5")
	r := o.last()
	for _, tc := range []struct{ name, got, want string }{
		{"Host", r.Host, "upstream.example"},
		{"X-Forwarded-For", r.Header.Get("X-Forwarded-For"), "203.0.113.9, 127.0.0.1"},
		{"X-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Host", r.Header.Get("X-Forwarded-Host"), "front.example"},
		{"X-Secret (named by Connection)", r.Header.Get("X-Secret"), ""},
		{"Keep-Alive", r.Header.Get("Keep-Alive"), ""},
		{"request URI", r.RequestURI, "/path?q=1"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s upstream = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestHopByHopResponseFieldsStayUpstream: the fields an upstream's
// Connection names concern its hop only (RFC 9110 §7.6.1).
func TestHopByHopResponseFieldsStayUpstream(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop, X-Other")
		w.Header().Set("X-Hop", "hop only")
		w.Header().Set("X-Other", "hop only")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End", "end to end")
	})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	resp, err := newClient().Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for name, want := range map[string]string{"X-Hop": "", "X-Other": "", "Keep-Alive": "", "X-End": "end to end"} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s downstream = %q, want %q", name, got, want)
		}
	}
}

func TestStatusOnUpstreamFailures(t *testing.T) {
	refused := testenv.RefusedAddr(t)
	garbage := rawOrigin(t, func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH\r\n\r\n")) })
	stall := rawOrigin(t, func(c net.Conn) { time.Sleep(2 * time.Second) })
	reset := rawOrigin(t, func(c net.Conn) {
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"))
		c.(*net.TCPConn).SetLinger(0)
	})
	tests := []struct {
		name    string
		backend string
		timeout time.Duration
		want    int
		cutOff  bool // the head was sent; the client sees a truncated body
	}{
		{"connection refused", refused, 0, 502, false},
		{"garbage", garbage, 0, 502, false},
		{"stall", stall, 300 * time.Millisecond, 504, false},
		{"reset mid-response", reset, 0, 200, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, tc.backend)
			srv := &Server{Proxy: &Balanced{LB: pool, Template: Peer{Timeouts: Timeouts{Read: tc.timeout}}}}
			addr := startProxy(t, srv)
			c := newClient()
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			_, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.cutOff && rerr == nil {
				t.Fatal("truncated upstream body reached the client as complete")
			}
		})
	}
}

// rawOrigin accepts connections and hands each, after its request head
// was read, to serve.
func rawOrigin(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestNoHealthyBackendIs503(t *testing.T) {
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, "127.0.0.1:9")
	pool.SetEnabled("127.0.0.1:9", false)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	if code, _ := get(t, newClient(), "http://"+addr+"/"); code != 503 {
		t.Fatalf("status %d, want 503", code)
	}
}

func TestConnectFailureRetriesAnotherBackend(t *testing.T) {
	dead := testenv.RefusedAddr(t)
	live := startOrigin(t, hello("live"))
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, dead, live.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}, MaxRetries: 1})
	c := newClient()
	for range 4 {
		if code, body := get(t, c, "http://"+addr+"/"); code != 200 || body != "hello from live" {
			t.Fatalf("got %d %q, want the live backend after a retry", code, body)
		}
	}
}

// rawExchange sends raw bytes to the proxy and returns everything it
// answers until it closes the connection or 3 s pass.
func rawExchange(t *testing.T, addr, request string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	closed := err == nil
	return string(out), closed
}

func TestBadRequests(t *testing.T) {
	o := startOrigin(t, hello("o"))
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 40<<10) + "\r\n\r\n"
	tests := []struct {
		name, req  string
		wantStatus string
	}{
		{"malformed request line", "GET /\r\n\r\n", "400"},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "400"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "400"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "400"},
		{"headers too large", big, "431"},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"two content lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "400"},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
		{"version 2 over h1", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, closed := rawExchange(t, addr, tc.req)
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.wantStatus+" ") || len(firstLine(out)) <= len("HTTP/1.1 400 ") {
				t.Fatalf("answer %q, want status %s with its reason", firstLine(out), tc.wantStatus)
			}
			if !closed {
				t.Fatal("the proxy left the connection open after a bad request")
			}
		})
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("%d bad requests reached the upstream", n)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

func TestSlowlorisIsCutOff(t *testing.T) {
	o := startOrigin(t, hello("o"))
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}, HeaderTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	// Trickle a header byte every 50ms: each arrives within any per-read
	// timeout, but the head never completes.
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(closed)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 60; i++ {
		select {
		case <-closed:
			if d := time.Since(start); d > time.Second {
				t.Fatalf("slow client cut off after %v, want about the 200ms header timeout", d)
			}
			return
		case <-tick.C:
			c.Write([]byte("X"))
		}
	}
	t.Fatal("a client trickling its request head was not cut off within 3s")
}

func TestKeepAliveReusesUpstreamConnections(t *testing.T) {
	var conns atomic.Int64
	o := startOriginTLS(t, hello("o"), nil, func(s *http.Server) {
		s.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
	})
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool}})
	c := newClient()
	for range 20 {
		if code, _ := get(t, c, "http://"+addr+"/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 sequential requests opened %d upstream connections, want 1", n)
	}
}

// failingPhases fails the phase named by which.
type failingPhases struct {
	*Balanced
	which string
}

func (f *failingPhases) RequestFilter(s *Session) (bool, error) {
	if f.which == "request" {
		return false, errors.New("boom")
	}
	return false, nil
}

func (f *failingPhases) UpstreamRequestFilter(s *Session, req *h1.Request) error {
	if f.which == "upstream request" {
		return errors.New("boom")
	}
	return nil
}

func (f *failingPhases) ResponseFilter(s *Session, resp *h1.Response) error {
	if f.which == "response" {
		return errors.New("boom")
	}
	return nil
}

// TestFailingPhasesAnswerAsDocumented: a failing request phase is the
// proxy's fault (500), a failing response filter ends the request with 502.
func TestFailingPhasesAnswerAsDocumented(t *testing.T) {
	o := startOrigin(t, hello("o"))
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	for _, tc := range []struct {
		which string
		want  int
	}{{"request", 500}, {"upstream request", 500}, {"response", 502}, {"none", 200}} {
		t.Run(tc.which, func(t *testing.T) {
			addr := startProxy(t, &Server{Proxy: &failingPhases{Balanced: &Balanced{LB: pool}, which: tc.which}})
			if code, _ := get(t, newClient(), "http://"+addr+"/"); code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
		})
	}
}

// TestRequestWithoutHostGetsTheUpstreamAddress: an HTTP/1.0 request may
// come without Host, but the HTTP/1.1 request made of it must have one
// (RFC 9112 §3.2), as must an HTTP/2 one have an authority: the proxy
// names the upstream's address ("localhost" for a Unix socket), and a
// real net/http backend, which answers 400 to an HTTP/1.1 request without
// Host, serves it. A request with a Host keeps it.
func TestRequestWithoutHostGetsTheUpstreamAddress(t *testing.T) {
	h2c := func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
	}
	for _, up := range []struct {
		name, network string
		configure     func(*http.Server)
		peer          Peer
		proto         string
	}{
		{"HTTP/1.1 upstream", "tcp", func(*http.Server) {}, Peer{}, "HTTP/1.1"},
		{"h2c upstream", "tcp", h2c, Peer{ALPN: ALPNH2C}, "HTTP/2.0"},
		{"HTTP/1.1 upstream on a Unix socket", "unix", func(*http.Server) {}, Peer{}, "HTTP/1.1"},
		{"h2c upstream on a Unix socket", "unix", h2c, Peer{ALPN: ALPNH2C}, "HTTP/2.0"},
	} {
		for _, tc := range []struct {
			name, request, wantHost string
		}{
			{"HTTP/1.0 without Host", "GET /path HTTP/1.0\r\n\r\n", ""},
			{"HTTP/1.0 with Host", "GET /path HTTP/1.0\r\nHost: front.example\r\n\r\n", "front.example"},
		} {
			t.Run(up.name+"/"+tc.name, func(t *testing.T) {
				upAddr, want := hostEchoOrigin(t, up.network, up.configure)
				if tc.wantHost != "" {
					want = tc.wantHost
				}
				pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, upAddr)
				addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: up.peer}})
				out, _ := rawExchange(t, addr, tc.request)
				if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
					t.Fatalf("answer %q, want 200", firstLine(out))
				}
				if _, body, _ := strings.Cut(out, "\r\n\r\n"); body != up.proto+" "+want+" /path" {
					t.Fatalf("the upstream saw %q, want %q", body, up.proto+" "+want+" /path")
				}
			})
		}
	}
}

// hostEchoOrigin starts a net/http origin on network ("tcp" or "unix")
// that answers with the protocol, Host and path it was sent. It returns
// the origin's address as a Peer.Addr, and the Host it should be sent
// when the client gave none.
func hostEchoOrigin(t *testing.T, network string, configure func(*http.Server)) (addr, host string) {
	t.Helper()
	laddr := "127.0.0.1:0"
	if network == "unix" {
		laddr = filepath.Join(t.TempDir(), "origin.sock")
	}
	ln, err := net.Listen(network, laddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.Proto, r.Host, r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	configure(srv)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if network == "unix" {
		return "unix:" + laddr, "localhost"
	}
	return ln.Addr().String(), ln.Addr().String()
}
