package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/config"
	"github.com/weir-lb/weir/pkg/lb"
)

// passiveTimeout bounds every wait of these tests.
const passiveTimeout = 10 * time.Second

// nameBackend is an HTTP backend on loopback that answers its name, with
// the status it is told, and can be stopped and started again on the same
// address.
type nameBackend struct {
	t      *testing.T
	name   string
	addr   string
	status atomic.Int32
	hits   atomic.Int64
	mu     sync.Mutex
	srv    *http.Server
}

func startNameBackend(t *testing.T, name string) *nameBackend {
	t.Helper()
	b := &nameBackend{t: t, name: name, addr: "127.0.0.1:0"}
	b.status.Store(200)
	b.start()
	t.Cleanup(b.stop)
	return b
}

// start serves on b.addr (the same address again after a stop).
func (b *nameBackend) start() {
	b.t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.WriteHeader(int(b.status.Load()))
		io.WriteString(w, b.name)
	}), ReadHeaderTimeout: passiveTimeout}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the listener and every connection.
func (b *nameBackend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

// startFrom builds, binds and serves yaml with o, and waits until it
// serves.
func startFrom(t *testing.T, yaml string, o Options) *Server {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	srv, err := NewWith(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-srv.Ready():
	case <-time.After(passiveTimeout):
		t.Fatal("the server did not become ready")
	}
	return srv
}

// backendStatus returns the status of the backend at addr in the
// server's only pool.
func backendStatus(t *testing.T, srv *Server, addr string) lb.Status {
	t.Helper()
	for _, st := range srv.poolOrder[0].bal.Status() {
		if st.Backend.Addr == addr {
			return st
		}
	}
	t.Fatalf("no backend %s in the pool", addr)
	return lb.Status{}
}

// waitFor polls cond every 10 ms until it holds, failing the test after
// passiveTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(passiveTimeout); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxyClient sends requests one at a time through the proxy at url and
// tells which backend answered each, by the body.
type proxyClient struct {
	t   *testing.T
	url string
	c   *http.Client
}

func newProxyClient(t *testing.T, port int) *proxyClient {
	return &proxyClient{t: t, url: fmt.Sprintf("http://127.0.0.1:%d/", port),
		c: &http.Client{Transport: &http.Transport{Proxy: nil, MaxConnsPerHost: 1}, Timeout: passiveTimeout}}
}

// get sends one request and returns its status and the name of the
// backend that answered (the body; empty for weir's own error answers).
func (pc *proxyClient) get() (int, string) {
	pc.t.Helper()
	resp, err := pc.c.Get(pc.url)
	if err != nil {
		pc.t.Fatalf("GET %s: %v", pc.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		pc.t.Fatalf("GET %s: reading the body: %v", pc.url, err)
	}
	return resp.StatusCode, string(body)
}

// shares sends n requests and counts them by the backend that answered;
// every one must succeed.
func (pc *proxyClient) shares(n int) map[string]int {
	pc.t.Helper()
	got := map[string]int{}
	for range n {
		code, name := pc.get()
		if code != 200 {
			pc.t.Fatalf("status %d from %q, want 200", code, name)
		}
		got[name]++
	}
	return got
}

// TestOutlierEjectsA5xxBackendAndItReturns: of three backends, the one
// answering 500 to everything is ejected once 3 requests reached it
// (consecutive_5xx: 3); the other two then share all the traffic; once it
// answers 200 again it returns, not before its ejection (base_ejection:
// 1s) is over, and takes its share again.
func TestOutlierEjectsA5xxBackendAndItReturns(t *testing.T) {
	good1, good2, bad := startNameBackend(t, "good1"), startNameBackend(t, "good2"), startNameBackend(t, "bad")
	bad.status.Store(500)
	port := freePorts(t, 1)[0]
	srv := startFrom(t, fmt.Sprintf(`version: 1
services:
  - name: web
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      backends: [%q, %q, %q]
      outlier_detection: {consecutive_5xx: 3, base_ejection: 1s}
`, port, good1.addr, good2.addr, bad.addr), Options{})
	pc := newProxyClient(t, port)

	for i := 0; bad.hits.Load() < 3; i++ {
		if i == 30 {
			t.Fatalf("30 requests, %d of them to the bad backend, want 3", bad.hits.Load())
		}
		pc.get()
	}
	waitFor(t, "the bad backend is ejected", func() bool { return backendStatus(t, srv, bad.addr).Ejected })
	until := backendStatus(t, srv, bad.addr).EjectedUntil

	// While it is out, the other two share everything. Only requests
	// sent well within the ejection count.
	got, sent := map[string]int{}, 0
	for ; sent < 20 && time.Until(until) > 200*time.Millisecond; sent++ {
		code, name := pc.get()
		if code != 200 {
			t.Fatalf("status %d from %q while the bad backend is ejected, want 200", code, name)
		}
		got[name]++
	}
	if sent < 4 || got["bad"] != 0 || got["good1"] == 0 || got["good2"] == 0 || abs(got["good1"]-got["good2"]) > 1 {
		t.Fatalf("during the ejection, %d requests went %v; want the two good backends to share them evenly", sent, got)
	}
	if n := bad.hits.Load(); n != 3 {
		t.Fatalf("the bad backend got %d requests, want 3", n)
	}

	// It recovers, and comes back once its ejection is over, not before.
	bad.status.Store(200)
	waitFor(t, "the ejection is over", func() bool { return !backendStatus(t, srv, bad.addr).Ejected })
	if now := time.Now(); now.Before(until) {
		t.Fatalf("the ejection ended at %v, before its end at %v", now, until)
	}
	if got := pc.shares(3); got["bad"] != 1 {
		t.Fatalf("once the ejection was over, 3 requests went %v; want one to the returned backend", got)
	}
	if got := pc.shares(30); got["bad"] < 5 {
		t.Fatalf("after its return, 30 requests went %v; want the returned backend to take its share", got)
	}
}

func abs(n int) int { return max(n, -n) }

// TestOutlierEjectsABackendThatResets: a backend that resets every
// connection before answering is ejected by gateway failures
// (consecutive_gateway_failures: 2), after which every request succeeds
// on the other backend and the resetting one sees no more connections.
func TestOutlierEjectsABackendThatResets(t *testing.T) {
	good := startNameBackend(t, "good")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var resets atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			resets.Add(1)
			// Read the request, then reset: no response byte.
			c.SetReadDeadline(time.Now().Add(passiveTimeout))
			c.Read(make([]byte, 4096))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	port := freePorts(t, 1)[0]
	srv := startFrom(t, fmt.Sprintf(`version: 1
services:
  - name: web
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      backends: [%q, %q]
      outlier_detection: {consecutive_gateway_failures: 2, base_ejection: 1h}
`, port, good.addr, ln.Addr().String()), Options{})
	pc := newProxyClient(t, port)

	for i := 0; resets.Load() < 2; i++ {
		if i == 20 {
			t.Fatalf("20 requests, %d of them to the resetting backend, want 2", resets.Load())
		}
		if code, name := pc.get(); code != 200 && code != 502 {
			t.Fatalf("status %d from %q, want 200 or 502", code, name)
		}
	}
	waitFor(t, "the resetting backend is ejected", func() bool { return backendStatus(t, srv, ln.Addr().String()).Ejected })
	if got := pc.shares(10); got["good"] != 10 {
		t.Fatalf("after the ejection, 10 requests went %v, want all to the good backend", got)
	}
	if n := resets.Load(); n != 2 {
		t.Fatalf("the ejected backend saw %d connections, want 2", n)
	}
}

// TestBackupServesOnlyWhenEveryPrimaryIsDown: a backup backend gets no
// request while a primary is up, every request once the health checks
// find both primaries down, and none again once they are back.
func TestBackupServesOnlyWhenEveryPrimaryIsDown(t *testing.T) {
	a, b, spare := startNameBackend(t, "a"), startNameBackend(t, "b"), startNameBackend(t, "spare")
	port := freePorts(t, 1)[0]
	srv := startFrom(t, fmt.Sprintf(`version: 1
services:
  - name: web
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      backends: [%q, %q, {addr: %q, backup: true}]
      health_check: {interval: 100ms, timeout: 100ms}
`, port, a.addr, b.addr, spare.addr), Options{})
	pc := newProxyClient(t, port)
	healthy := func(addr string) bool { return backendStatus(t, srv, addr).Healthy }

	if got := pc.shares(20); got["spare"] != 0 || got["a"] != 10 || got["b"] != 10 {
		t.Fatalf("with both primaries up, 20 requests went %v; want a and b 10 each, the backup none", got)
	}

	a.stop()
	b.stop()
	waitFor(t, "both primaries are down", func() bool { return !healthy(a.addr) && !healthy(b.addr) })
	if got := pc.shares(10); got["spare"] != 10 {
		t.Fatalf("with every primary down, 10 requests went %v, want all to the backup", got)
	}

	a.start()
	b.start()
	waitFor(t, "both primaries are back", func() bool { return healthy(a.addr) && healthy(b.addr) })
	if got := pc.shares(20); got["spare"] != 0 || got["a"] == 0 || got["b"] == 0 {
		t.Fatalf("with the primaries back, 20 requests went %v; want them shared by a and b, the backup none", got)
	}
}

// TestSlowStartRampsAReturningBackend: a backend that turns healthy
// (slow_start: 10s) starts with a tenth of its weight and ends with all
// of it. The test drives the load balancers' clock, so the shares are
// those of exact points of the ramp: with round_robin over a, b and the
// newcomer n, n's share of 210 requests is 10 (weights 10, 10, 1) at
// the start, 48 of 208 (10, 10, 6) half-way, 70 (1, 1, 1) at the end.
func TestSlowStartRampsAReturningBackend(t *testing.T) {
	a, b, n := startNameBackend(t, "a"), startNameBackend(t, "b"), startNameBackend(t, "n")
	n.stop() // down at start: its first check fails
	clock := lb.NewManualClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	port := freePorts(t, 1)[0]
	srv := startFrom(t, fmt.Sprintf(`version: 1
services:
  - name: web
    kind: http_proxy
    listen: ["127.0.0.1:%d"]
    upstream:
      backends: [%q, %q, %q]
      health_check: {interval: 100ms, timeout: 100ms}
      slow_start: 10s
`, port, a.addr, b.addr, n.addr), Options{clock: clock})
	pc := newProxyClient(t, port)
	if got := pc.shares(20); got["n"] != 0 {
		t.Fatalf("with n down, 20 requests went %v", got)
	}

	n.start()
	waitFor(t, "n is healthy", func() bool { return backendStatus(t, srv, n.addr).Healthy })
	// The first requests may meet the selector of the instant before
	// the ramp's weights were published; the counts start after them.
	pc.shares(21)
	tests := []struct {
		at       time.Duration // into the ramp
		requests int
		lo, hi   int // n's count
	}{
		{0, 210, 9, 11},
		{5 * time.Second, 208, 46, 50},
		{10 * time.Second, 210, 68, 72},
	}
	at := time.Duration(0)
	var shares []int
	for _, tc := range tests {
		clock.Advance(tc.at - at)
		at = tc.at
		got := pc.shares(tc.requests)
		shares = append(shares, got["n"])
		if got["n"] < tc.lo || got["n"] > tc.hi {
			t.Errorf("%v into the ramp, n got %d of %d requests (%v), want %d to %d", tc.at, got["n"], tc.requests, got, tc.lo, tc.hi)
		}
	}
	if !slices.IsSorted(shares) {
		t.Errorf("n's share did not grow over the ramp: %v", shares)
	}
}
