package l7

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/retry"
	"golang.org/x/net/http2"
)

// BenchmarkProxiedRequestSlots is BenchmarkProxiedRequest with the
// backend's max_connections set and never reached: the cost of taking
// and freeing a slot on every request.
func BenchmarkProxiedRequestSlots(b *testing.B) {
	bal := benchBackend(b)
	pool, _ := lb.NewStatic(lb.MustBackend(bal.LB.(*lb.LoadBalancer[*lb.RoundRobin]).Current()[0].Addr, 1))
	upstream, _ := lb.New(&lb.RoundRobin{}, lb.Options{Discovery: pool,
		Limits: &lb.ConnLimits{MaxConnections: 100, QueueSize: 100, QueueTimeout: time.Second}})
	upstream.Update(context.Background())
	benchProxied(b, &Balanced{LB: upstream, Slots: upstream}, benchRequest)
}

// heldOrigin is a backend that holds every request until the test lets
// it go, and counts how many it holds at once.
type heldOrigin struct {
	*origin
	arrived chan struct{}
	release chan struct{}
	now     atomic.Int64
	peak    atomic.Int64
	done    atomic.Int64
}

// served is how many requests the origin answered.
func (h *heldOrigin) served() int64 { return h.done.Load() }

func startHeldOrigin(t *testing.T, configure ...func(*http.Server)) *heldOrigin {
	h := &heldOrigin{arrived: make(chan struct{}, 64), release: make(chan struct{}, 64)}
	h.origin = startOriginTLS(t, func(w http.ResponseWriter, r *http.Request) {
		n := h.now.Add(1)
		for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
		}
		h.arrived <- struct{}{}
		select {
		case <-h.release:
		case <-time.After(10 * time.Second):
		}
		h.now.Add(-1)
		h.done.Add(1)
		w.Write([]byte("done"))
	}, nil, configure...)
	return h
}

// limitedBalanced returns a Balanced over one backend with limit
// max_connections and a queue of size, waiting up to timeout.
func limitedBalanced(t *testing.T, addrs []string, limit, size int, timeout time.Duration, peer Peer, od *lb.OutlierDetection) (*Balanced, *lb.LoadBalancer[*lb.RoundRobin]) {
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{Outlier: od,
		Limits: &lb.ConnLimits{MaxConnections: limit, QueueSize: size, QueueTimeout: timeout}}, addrs...)
	return &Balanced{LB: pool, Slots: pool, Template: peer}, pool
}

// waitLength waits, bounded, until n requests wait in pool's queue.
func waitLength(t *testing.T, pool *lb.LoadBalancer[*lb.RoundRobin], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pool.Queue().Length != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue length %d, want %d", pool.Queue().Length, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFreed waits, bounded, until no backend of pool holds a slot: the
// last request's ends just after its response reached the client.
func waitFreed(t *testing.T, pool *lb.LoadBalancer[*lb.RoundRobin]) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		held := false
		for _, s := range pool.Status() {
			held = held || s.Slots != 0
		}
		if !held {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots still held after every request ended: %+v", pool.Status())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBackendSlotsAndQueue: with max_connections 1 and a queue of 1, over
// HTTP/1.1 and h2c upstreams, the backend never holds more than one
// request; the second waits and is served when the first ends; the third
// is refused at once with 503; every slot is free at the end.
func TestBackendSlotsAndQueue(t *testing.T) {
	h2c := func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
		s.Protocols.SetHTTP1(true)
	}
	for _, tc := range []struct {
		name string
		peer Peer
	}{{"http1", Peer{}}, {"h2c", Peer{ALPN: ALPNH2C}}} {
		t.Run(tc.name, func(t *testing.T) {
			o := startHeldOrigin(t, h2c)
			bal, pool := limitedBalanced(t, []string{o.addr}, 1, 1, time.Minute, tc.peer, nil)
			addr := startProxy(t, &Server{Proxy: bal})
			get := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			results := make(chan string, 2)
			var wg sync.WaitGroup
			wg.Go(func() { results <- sendAlone(addr, get) })
			<-o.arrived
			wg.Go(func() { results <- sendAlone(addr, get) })
			waitLength(t, pool, 1)
			if out, _ := rawExchange(t, addr, get); !strings.HasPrefix(out, "HTTP/1.1 503") {
				t.Fatalf("with the backend full and the queue full: %q, want 503", out)
			}
			o.release <- struct{}{}
			<-o.arrived // the queued one reached the backend
			o.release <- struct{}{}
			wg.Wait()
			close(results)
			for out := range results {
				if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.HasSuffix(out, "done") {
					t.Errorf("response %q, want 200 done", out)
				}
			}
			if p := o.peak.Load(); p != 1 {
				t.Errorf("the backend held %d requests at once, limit 1", p)
			}
			// The response's last bytes may reach the client just before
			// the exchange ends and frees the slot.
			waitFreed(t, pool)
			if s := pool.Status()[0]; s.Slots != 0 || s.InFlight != 0 {
				t.Errorf("after every request: %d slots, %d in flight", s.Slots, s.InFlight)
			}
			if q := pool.Queue(); q.Full != 1 || q.Waited != 1 || q.Length != 0 {
				t.Errorf("queue %+v: want 1 refused full, 1 waited", q)
			}
		})
	}
}

// TestQueueTimeoutIsNotABackendFailure: a request that times out in the
// queue gets 503, and passive health, which would eject the backend at
// its first gateway failure, is not told of it.
func TestQueueTimeoutIsNotABackendFailure(t *testing.T) {
	o := startHeldOrigin(t)
	od := &lb.OutlierDetection{ConsecutiveGatewayFailures: 1, MaxEjectionPercent: 100, BaseEjection: time.Hour}
	bal, pool := limitedBalanced(t, []string{o.addr}, 1, 4, 30*time.Millisecond, Peer{}, od)
	addr := startProxy(t, &Server{Proxy: bal})
	get := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	done := make(chan string)
	go func() { done <- sendAlone(addr, get) }()
	<-o.arrived
	if out, _ := rawExchange(t, addr, get); !strings.HasPrefix(out, "HTTP/1.1 503") {
		t.Fatalf("past the queue timeout: %q, want 503", out)
	}
	if s := pool.Status()[0]; s.Ejected {
		t.Fatal("a queue timeout ejected the backend")
	}
	if q := pool.Queue(); q.Timeouts != 1 || q.Length != 0 {
		t.Fatalf("queue %+v, want one timeout, none waiting", q)
	}
	o.release <- struct{}{}
	if out := <-done; !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("the held request: %q", out)
	}
}

// TestSlotFreedOnConnectRetry: a request whose first backend refuses the
// connection frees that backend's slot before it takes one on the next,
// and the next serves it.
func TestSlotFreedOnConnectRetry(t *testing.T) {
	refused := testenv.RefusedAddr(t)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	bal, pool := limitedBalanced(t, []string{refused, o.addr}, 1, 0, time.Second, Peer{}, nil)
	addr := startProxy(t, &Server{Proxy: bal, MaxRetries: 1})
	for i := range 4 {
		if out, _ := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Fatalf("request %d: response %q", i+1, out)
		}
		// The slot on the backend that served is freed just after the
		// response (and its FIN) reached the client: without a queue,
		// the next request would be refused if it came first. Every
		// slot, the refused backend's included, is free before it.
		waitFreed(t, pool)
	}
}

// TestQueuedStreamResetLeavesTheQueue: an HTTP/2 client that resets its
// stream while the request waits for a slot takes it out of the queue at
// once; no slot leaks, and the request is not counted as a timeout.
func TestQueuedStreamResetLeavesTheQueue(t *testing.T) {
	o := startHeldOrigin(t)
	bal, pool := limitedBalanced(t, []string{o.addr}, 1, 4, time.Minute, Peer{}, nil)
	addr := startProxy(t, &Server{Proxy: bal})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	held := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/held")
		if err == nil {
			resp.Body.Close()
		}
		held <- err
	}()
	<-o.arrived
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/queued", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		queued <- err
	}()
	waitLength(t, pool, 1)
	cancel()
	if err := <-queued; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	waitLength(t, pool, 0)
	o.release <- struct{}{}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	waitFreed(t, pool)
	if q := pool.Queue(); q.Timeouts != 0 || q.Waited != 1 {
		t.Fatalf("queue %+v: want one wait, no timeout", q)
	}
	if o.served() != 1 {
		t.Fatalf("the backend saw %d requests, want only the held one", o.served())
	}
}

// TestStickyWaitsForItsBackend: a request whose sticky cookie names a
// full backend waits for that backend's slot rather than going to one
// with room, and is served by it.
func TestStickyWaitsForItsBackend(t *testing.T) {
	a, b := startHeldOrigin(t), startHeldOrigin(t)
	bal, pool := limitedBalanced(t, []string{a.addr, b.addr}, 1, 4, time.Minute, Peer{}, nil)
	bal.Sticky = &Sticky{Cookie: "srv", TTL: time.Hour}
	addr := startProxy(t, &Server{Proxy: bal})
	first := make(chan string, 1)
	go func() { first <- sendAlone(addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }()
	var own *heldOrigin
	select {
	case <-a.arrived:
		own = a
	case <-b.arrived:
		own = b
	}
	own.release <- struct{}{}
	out := <-first
	_, rest, _ := strings.Cut(out, "Set-Cookie: srv=")
	id, _, _ := strings.Cut(rest, ";")
	if id == "" {
		t.Fatalf("no sticky cookie in %q", out)
	}
	withCookie := "GET / HTTP/1.1\r\nHost: x\r\nCookie: srv=" + id + "\r\nConnection: close\r\n\r\n"
	results := make(chan string, 2)
	go func() { results <- sendAlone(addr, withCookie) }()
	<-own.arrived
	go func() { results <- sendAlone(addr, withCookie) }()
	waitLength(t, pool, 1)
	own.release <- struct{}{}
	<-own.arrived // the waiter reached its own backend
	own.release <- struct{}{}
	for range 2 {
		if out := <-results; !strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Errorf("response %q", out)
		}
	}
	if own.served() != 3 {
		t.Errorf("the sticky backend served %d, want 3", own.served())
	}
}

// TestTunnelHoldsItsSlot: a WebSocket tunnel holds its backend's slot
// until it closes: a request meanwhile waits, and is served once the
// tunnel ends.
func TestTunnelHoldsItsSlot(t *testing.T) {
	echo := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			w.Write([]byte("plain"))
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		rw.Flush()
		io.Copy(conn, rw)
	})
	bal, pool := limitedBalanced(t, []string{echo.addr}, 1, 1, time.Minute, Peer{}, nil)
	addr := startProxy(t, &Server{Proxy: bal})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	plain := make(chan string, 1)
	go func() { plain <- sendAlone(addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }()
	waitLength(t, pool, 1)
	io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo through the tunnel: %q, %v", got, err)
	}
	c.Close()
	if out := <-plain; !strings.HasSuffix(out, "plain") {
		t.Fatalf("the request after the tunnel: %q", out)
	}
	waitFreed(t, pool)
}

// TestStickyWaiterRebalancedWhenItsBackendGoes: a request waiting for its
// sticky backend's slot is balanced to another backend, with a new
// cookie, once its own is ejected, rather than waiting out the queue.
func TestStickyWaiterRebalancedWhenItsBackendGoes(t *testing.T) {
	a, b := startHeldOrigin(t), startHeldOrigin(t)
	od := &lb.OutlierDetection{ConsecutiveGatewayFailures: 1, MaxEjectionPercent: 100, BaseEjection: time.Hour}
	bal, pool := limitedBalanced(t, []string{a.addr, b.addr}, 1, 4, time.Minute, Peer{}, od)
	bal.Sticky = &Sticky{Cookie: "srv", TTL: time.Hour}
	addr := startProxy(t, &Server{Proxy: bal})
	// The cookie of a's backend, as a response from it would set it.
	cookie := fmt.Sprintf("%016x", bal.Sticky.id(a.addr))
	req := "GET / HTTP/1.1\r\nHost: x\r\nCookie: srv=" + cookie + "\r\nConnection: close\r\n\r\n"
	results := make(chan string, 2)
	go func() { results <- sendAlone(addr, req) }()
	<-a.arrived
	go func() { results <- sendAlone(addr, req) }()
	waitLength(t, pool, 1)
	for _, be := range pool.Current() {
		if be.Addr == a.addr {
			be.Report(lb.OutcomeGatewayFailure) // ejected
		}
	}
	<-b.arrived // the waiter went to b
	b.release <- struct{}{}
	if out := <-results; !strings.Contains(out, "Set-Cookie: srv=") {
		t.Errorf("the rebalanced request got no new cookie: %q", out)
	}
	a.release <- struct{}{}
	<-results
}

// TestCloseEndsQueuedRequests: Close ends the waits in the queue at once,
// rather than leaving the requests to wait out the queue timeout.
func TestCloseEndsQueuedRequests(t *testing.T) {
	o := startHeldOrigin(t)
	bal, pool := limitedBalanced(t, []string{o.addr}, 1, 4, time.Hour, Peer{}, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Proxy: bal}
	go srv.Serve(ln)
	addr := ln.Addr().String()
	get := "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	go sendAlone(addr, get)
	<-o.arrived
	go sendAlone(addr, get)
	waitLength(t, pool, 1)
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	// The queued request leaves while the first still holds the only
	// slot (Close itself waits for that one's exchange).
	waitLength(t, pool, 0)
	if q := pool.Queue(); q.Timeouts != 0 || q.Waited != 1 {
		t.Fatalf("queue %+v after Close: want one wait, ended without a timeout", q)
	}
	o.release <- struct{}{}
	<-closed
}

// sendAlone sends request on a connection of its own and returns what came
// back until the connection closed ("" when it could not be sent): for
// goroutines, which must not fail the test themselves.
func sendAlone(addr, request string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return ""
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

// TestSlotsOfStatusRetries: a retry policy's retry of a 503 goes to
// another backend under max_connections 1; the slot of the discarded
// attempt is freed and the retry holds one of its own, so every request
// succeeds and no slot is left held, however many requests meet the
// failing backend.
func TestSlotsOfStatusRetries(t *testing.T) {
	bad := startOrigin(t, failing("bad"))
	good := startOrigin(t, hello("good"))
	pol := &retry.Policy{On: retry.Of(retry.Status503), Attempts: 2, Budget: &retry.Budget{Percent: 20, MinConcurrency: 3}}
	bal, pool := limitedBalanced(t, []string{bad.addr, good.addr}, 1, 4, time.Second, Peer{Retry: pol}, nil)
	addr := startProxy(t, &Server{Proxy: bal})
	c := newClient()
	for i := range 8 {
		if code, body := get(t, c, "http://"+addr+"/"); code != 200 || !strings.HasPrefix(body, "hello from") {
			t.Fatalf("request %d: %d %q, want 200 from the good backend", i, code, body)
		}
	}
	if bad.requests.Load() == 0 || pol.Stats().Retries[retry.Status503] != uint64(bad.requests.Load()) {
		t.Fatalf("bad saw %d requests, %d retried; want some, each retried", bad.requests.Load(), pol.Stats().Retries[retry.Status503])
	}
	waitFreed(t, pool)
}
