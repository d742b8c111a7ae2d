package l7

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
	"github.com/weir-lb/weir/pkg/limit"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// limitRecorder is an Observer recording each request's status and the
// fault of its error.
type limitRecorder struct {
	balance
	mu   sync.Mutex
	done []string // "status fault"
}

func (o *limitRecorder) RequestDone(s *Session, err error) {
	o.balance.RequestDone(s, err)
	o.mu.Lock()
	o.done = append(o.done, fmt.Sprintf("%d %s", s.Status, FaultOf(err)))
	o.mu.Unlock()
}

func (o *limitRecorder) results() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.done...)
}

// limitedFront serves a proxy with limits in front of an origin answering
// with h, and returns its address, the limits, the origin and the
// recorder.
func limitedFront(t *testing.T, cl *ClientLimits, h http.HandlerFunc, configure ...func(*Server)) (string, *origin, *limitRecorder) {
	t.Helper()
	o := startOrigin(t, h)
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	rec := &limitRecorder{}
	srv := &Server{Proxy: &Balanced{LB: pool}, ClientLimits: cl, Observer: rec}
	for _, f := range configure {
		f(srv)
	}
	return startProxy(t, srv), o, rec
}

func newRateLimits(t *testing.T, rate limit.Rate, clock *testClock) *ClientLimits {
	t.Helper()
	rl, err := limit.NewRateLimiter(limit.RateConfig{Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	return &ClientLimits{Rate: rl, Now: clock.Now}
}

// TestRateLimitAnswers429WithRetryAfter: over its rate a client gets 429
// and the exact wait, rounded up to seconds; the connection stays open;
// once the wait is over it is served again.
func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	clock := &testClock{now: time.Unix(1000, 0)}
	cl := newRateLimits(t, limit.Every(4*time.Second, 2), clock)
	addr, o, _ := limitedFront(t, cl, hello("o"))

	t.Run("HTTP/1.1", func(t *testing.T) {
		k := dialKeepAlive(t, addr)
		steps := []struct {
			advance    time.Duration
			status     int
			retryAfter string
		}{
			{0, 200, ""}, {0, 200, ""}, // the burst
			{0, 429, "4"},
			{1500 * time.Millisecond, 429, "3"}, // 2.5 s left: rounded up
			{2500 * time.Millisecond, 200, ""},
			{0, 429, "4"},
		}
		for i, st := range steps {
			clock.Advance(st.advance)
			resp, err := k.do()
			if err != nil {
				t.Fatalf("step %d: %v (a 429 must keep the connection open)", i, err)
			}
			if resp.StatusCode != st.status || resp.Header.Get("Retry-After") != st.retryAfter {
				t.Fatalf("step %d: %d Retry-After %q, want %d %q", i, resp.StatusCode, resp.Header.Get("Retry-After"), st.status, st.retryAfter)
			}
		}
		if n := cl.Limited(LimitRate); n != 3 {
			t.Errorf("Limited(rate) = %d, want 3", n)
		}
		if n := o.requests.Load(); n != 3 {
			t.Errorf("origin got %d requests, want the 3 allowed", n)
		}
	})

	t.Run("HTTP/2", func(t *testing.T) {
		clock.Advance(time.Minute) // a full bucket again
		c := dialH2(t, addr)
		for i, want := range []int{200, 200, 429} {
			id := uint32(2*i + 1)
			c.get(id, "/")
			r := c.response(id)
			if r.status != want {
				t.Fatalf("stream %d: %v, want %d", id, r, want)
			}
			if want == 429 && fmt.Sprint(r.header["retry-after"]) != "[4]" {
				t.Fatalf("429's retry-after = %v, want [4]", r.header["retry-after"])
			}
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		c := dialH2(t, addr)
		c.headers(1, true, ":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/svc/M", "content-type", "application/grpc")
		r := c.response(1)
		if r.status != 200 || fmt.Sprint(r.header["grpc-status"]) != "[8]" {
			t.Fatalf("gRPC over the rate: %v %v, want 200 with grpc-status 8 (RESOURCE_EXHAUSTED)", r, r.header)
		}
	})
}

// TestRequestBodyLimit: a declared length over the limit is 413 before
// anything goes upstream (instead of 100 Continue too); a chunked body
// crossing it mid-stream fails as the client's fault with 413, its
// upstream connection closed; a body at the limit passes.
func TestRequestBodyLimit(t *testing.T) {
	cl := &ClientLimits{MaxRequestBody: 10}
	var bodies sync.Map // body received → true
	addr, o, rec := limitedFront(t, cl, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			bodies.Store(string(b), true)
		}
		io.WriteString(w, "ok")
	})
	tests := []struct {
		name     string
		raw      string
		status   int
		upstream int64 // requests the origin received
	}{
		{"length at the limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", 200, 1},
		{"length over the limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n0123456789a", 413, 0},
		{"expect 100-continue over the limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n", 413, 0},
		{"chunked at the limit", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", 200, 1},
		{"chunked crossing the limit", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n1\r\nX\r\n0\r\n\r\n", 413, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, limited := o.requests.Load(), cl.Limited(LimitBody)
			k := dialKeepAlive(t, addr)
			sendRaw(t, k, tc.raw)
			resp, err := http.ReadResponse(k.r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == 100 {
				t.Fatal("got 100 Continue for a body over the limit")
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := o.requests.Load() - before; tc.upstream >= 0 && got != tc.upstream {
				t.Errorf("origin got %d requests, want %d", got, tc.upstream)
			}
			wantLimited := uint64(0)
			if tc.status == 413 {
				wantLimited = 1
				if !resp.Close {
					t.Error("413 without Connection: close")
				}
			}
			if got := cl.Limited(LimitBody) - limited; got != wantLimited {
				t.Errorf("Limited(body) grew by %d, want %d", got, wantLimited)
			}
		})
	}
	if _, ok := bodies.Load("0123456789X"); ok {
		t.Error("the origin received a whole body over the limit")
	}
	waitFor(t, "every request done", func() bool { return len(rec.results()) == len(tests) })
	for _, r := range rec.results() {
		if strings.HasPrefix(r, "413") && r != "413 client" {
			t.Errorf("a 413 was recorded as %q, want the client's fault", r)
		}
	}
}

// TestRequestBodyLimitHTTP2: over HTTP/2, a declared content-length over
// the limit is 413 at once; DATA without one crossing it is 413, then the
// stream is reset (the client is told to stop sending).
func TestRequestBodyLimitHTTP2(t *testing.T) {
	cl := &ClientLimits{MaxRequestBody: 10}
	addr, o, _ := limitedFront(t, cl, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	post := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/"}
	c := dialH2(t, addr)

	c.headers(1, false, append(post, "content-length", "11")...)
	if r := c.response(1); r.status != 413 {
		t.Fatalf("content-length over the limit: %v, want 413", r)
	}
	if n := o.requests.Load(); n != 0 {
		t.Fatalf("origin got %d requests, want 0", n)
	}

	c.headers(3, false, post...)
	c.data(3, false, "0123456789")
	c.data(3, false, "X") // and the client would send more
	r := c.response(3)
	for !r.wasReset && c.readFrame() {
	}
	if r.status != 413 || !r.wasReset {
		t.Fatalf("DATA crossing the limit: %v, want 413 then a reset", r)
	}

	c.headers(5, false, post...)
	c.data(5, true, "0123456789")
	if r := c.response(5); r.status != 200 {
		t.Fatalf("a body at the limit: %v, want 200", r)
	}
	if n := cl.Limited(LimitBody); n != 2 {
		t.Errorf("Limited(body) = %d, want 2", n)
	}
}

// TestHeaderLimits431: a head over Server.Limits gets 431 over HTTP/1.1
// and HTTP/2, counted; over HTTP/2 a single field longer than the whole
// limit too (the HPACK decoder must not end the connection for it).
func TestHeaderLimits431(t *testing.T) {
	cl := &ClientLimits{}
	addr, _, _ := limitedFront(t, cl, hello("o"), func(s *Server) {
		s.Limits = h1.Limits{MaxHeaderBytes: 1024, MaxHeaders: 5}
	})
	many := ""
	for i := range 6 {
		many += fmt.Sprintf("X-%d: v\r\n", i)
	}
	for _, tc := range []struct{ name, raw string }{
		{"too many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + many + "\r\n"},
		{"too many bytes", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 1100) + "\r\n\r\n"},
	} {
		t.Run("HTTP/1.1 "+tc.name, func(t *testing.T) {
			before := cl.Limited(LimitHeader)
			if got, _ := rawExchange(t, addr, tc.raw); !strings.HasPrefix(got, "HTTP/1.1 431 ") {
				t.Fatalf("got %q, want 431", firstLine(got))
			}
			if cl.Limited(LimitHeader) != before+1 {
				t.Error("the 431 was not counted")
			}
		})
	}
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"too many fields", []string{"a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6"}},
		{"one field over the whole limit", []string{"x-big", strings.Repeat("b", 4000)}},
	} {
		t.Run("HTTP/2 "+tc.name, func(t *testing.T) {
			before := cl.Limited(LimitHeader)
			c := dialH2(t, addr)
			c.get(1, "/", tc.extra...)
			if r := c.response(1); r.status != 431 {
				t.Fatalf("got %v (GOAWAY %+v), want 431", r, c.goAway)
			}
			c.get(3, "/")
			if r := c.response(3); r.status != 200 {
				t.Fatalf("the next stream: %v, want 200", r)
			}
			if cl.Limited(LimitHeader) != before+1 {
				t.Error("the 431 was not counted")
			}
		})
	}
}

// TestClientConnectionLimit: a client at its limit has further
// connections closed at once, counted; its count returns to 0 after
// many connections opened and closed, whichever way they ended.
func TestClientConnectionLimit(t *testing.T) {
	conns, err := limit.NewConnLimiter(limit.ConnConfig{Max: 2})
	if err != nil {
		t.Fatal(err)
	}
	cl := &ClientLimits{Conns: conns}
	addr, _, rec := limitedFront(t, cl, hello("o"))
	client := netip.MustParseAddr("127.0.0.1")

	a, b := dialKeepAlive(t, addr), dialKeepAlive(t, addr)
	for _, k := range []*keepAliveConn{a, b} {
		if resp, err := k.do(); err != nil || resp.StatusCode != 200 {
			t.Fatalf("under the limit: %v, %v", resp, err)
		}
	}
	c := dialKeepAlive(t, addr)
	if resp, err := c.do(); err == nil {
		t.Fatalf("a third connection was served: %d", resp.StatusCode)
	}
	if n := cl.Limited(LimitClientConnections); n != 1 {
		t.Fatalf("Limited(client_connections) = %d, want 1", n)
	}
	a.c.Close()
	waitFor(t, "the closed connection released", func() bool { return conns.Count(client) == 1 })
	d := dialKeepAlive(t, addr)
	if resp, err := d.do(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after one closed: %v, %v", resp, err)
	}

	// Many cycles: served, refused, idle, half-sent heads, HTTP/2.
	const cycles = 100
	var wg sync.WaitGroup
	for i := range cycles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			switch i % 3 {
			case 0:
				fmt.Fprint(nc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				io.Copy(io.Discard, nc)
			case 1:
				fmt.Fprint(nc, "GET / HTTP/1.1\r\nHo")
			case 2:
				io.WriteString(nc, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
			}
		}()
	}
	wg.Wait()
	for _, k := range []*keepAliveConn{b, c, d} {
		k.c.Close()
	}
	waitFor(t, "every connection closed", func() bool { return rec.closed.Load() == rec.opened.Load() })
	if n, clients := conns.Count(client), conns.Len(); n != 0 || clients != 0 {
		t.Errorf("after every connection closed: count %d, %d clients tracked; want 0, 0", n, clients)
	}
	if n := cl.Limited(LimitClientConnections); n < 1 || n > cycles+1 {
		t.Errorf("Limited(client_connections) = %d", n)
	}
}

// TestClientLimitsOffCostNothing: ClientLimits.Limited on a nil value is
// 0, and a Limit names itself as the metric label does.
func TestLimitNames(t *testing.T) {
	var cl *ClientLimits
	if cl.Limited(LimitRate) != 0 {
		t.Error("nil ClientLimits counted something")
	}
	var names []string
	for _, l := range Limits {
		names = append(names, l.String())
	}
	if got := strings.Join(names, ","); got != "rate,body,header,client_connections" {
		t.Errorf("names = %s", got)
	}
	if !errors.Is(bodyTooLarge, ErrDownstream) || statusFor(bodyTooLarge) != 413 {
		t.Error("a body over the limit is not the client's 413")
	}
}

// TestBodyOverLimitIsNotTheBackends: a body of unknown length crossing
// the limit mid-stream, over an HTTP/1.1 or an h2c upstream, fails as
// the client's fault: 413, the backend not reported (outlier detection
// ejecting at the first failure leaves it in), and over HTTP/1.1 the
// upstream connection closed rather than pooled with half a request on
// it.
func TestBodyOverLimitIsNotTheBackends(t *testing.T) {
	h2c := func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
	}
	for _, tc := range []struct {
		name string
		peer Peer
		conf []func(*http.Server)
	}{
		{"HTTP/1.1 upstream", Peer{}, nil},
		{"h2c upstream", Peer{ALPN: ALPNH2C}, []func(*http.Server){h2c}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			conf := append(tc.conf, func(s *http.Server) {
				s.ConnState = func(_ net.Conn, st http.ConnState) {
					if st == http.StateNew {
						conns.Add(1)
					}
				}
			})
			o := startOriginTLS(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok")
			}, nil, conf...)
			od := &lb.OutlierDetection{ConsecutiveGatewayFailures: 1, Consecutive5xx: 1, MaxEjectionPercent: 100, BaseEjection: time.Hour}
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{Outlier: od}, o.addr)
			logs := newSessionLog()
			addr := startProxy(t, &Server{
				Proxy:        &loggedBalanced{Balanced: &Balanced{LB: pool, Template: tc.peer}, sessionLog: logs},
				ClientLimits: &ClientLimits{MaxRequestBody: 10},
			})
			k := dialKeepAlive(t, addr)
			if resp, err := k.do(); err != nil || resp.StatusCode != 200 {
				t.Fatalf("first GET: %v, %v", resp, err)
			}
			logs.next(t)
			for i := range 2 {
				got, _ := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n")
				if !strings.HasPrefix(got, "HTTP/1.1 413 ") {
					t.Fatalf("body over the limit %d: %q, want 413", i, firstLine(got))
				}
				if e := logs.next(t); e.status != 413 || e.fault != ClientFault {
					t.Fatalf("logged %+v, want 413, the client's fault", e)
				}
				if pool.Status()[0].Ejected {
					t.Fatal("the backend was ejected for a client's body")
				}
			}
			if resp, err := k.do(); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET after: %v, %v", resp, err)
			}
			logs.next(t)
			if tc.peer.ALPN != ALPNH2C && conns.Load() < 2 {
				t.Errorf("%d upstream connections: the one a body over the limit was cut on went back to the pool", conns.Load())
			}
		})
	}
}

// TestGRPCRateLimit: a real gRPC client over its rate gets
// RESOURCE_EXHAUSTED, and its connection serves the next call once a
// token is back.
func TestGRPCRateLimit(t *testing.T) {
	backend, _, _ := testenv.GRPCBackend(t, nil, testenv.NewGRPCService(), false)
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend)
	clock := &testClock{now: time.Unix(1000, 0)}
	cl := newRateLimits(t, limit.Every(time.Second, 1), clock)
	addr := startProxy(t, &Server{Proxy: &Balanced{LB: pool, Template: Peer{ALPN: ALPNH2C}}, ClientLimits: cl})
	client := testenv.GRPCClient(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, want := range []codes.Code{codes.OK, codes.ResourceExhausted, codes.OK} {
		if i == 2 {
			clock.Advance(time.Second)
		}
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != want {
			t.Fatalf("call %d: %v, want %v", i, err, want)
		}
	}
	if n := cl.Limited(LimitRate); n != 1 {
		t.Errorf("Limited(rate) = %d, want 1", n)
	}
}

// bodyRoute is a Proxy whose RequestFilter gives requests under /big a
// larger body limit and those under /tiny a smaller one, as a route's
// max_request_body does.
type bodyRoute struct{ *Balanced }

func (p bodyRoute) RequestFilter(s *Session) (bool, error) {
	switch {
	case strings.HasPrefix(string(s.Req.Target), "/big"):
		s.MaxRequestBody = 100
	case strings.HasPrefix(string(s.Req.Target), "/tiny"):
		s.MaxRequestBody = 2
	}
	return false, nil
}

// TestRequestFilterSetsTheBodyLimit: a RequestFilter's MaxRequestBody
// replaces the server's, larger or smaller, for a declared length and a
// chunked body alike; other requests keep the server's.
func TestRequestFilterSetsTheBodyLimit(t *testing.T) {
	o := startOrigin(t, hello("o"))
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, o.addr)
	cl := &ClientLimits{MaxRequestBody: 10}
	addr := startProxy(t, &Server{Proxy: bodyRoute{&Balanced{LB: pool}}, ClientLimits: cl})
	chunked := func(path string, n int) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", path, n, strings.Repeat("b", n))
	}
	length := func(path string, n int) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", path, n, strings.Repeat("b", n))
	}
	for _, tc := range []struct {
		raw    string
		status string
	}{
		{length("/", 50), "413"},
		{length("/big", 50), "200"},
		{chunked("/big", 50), "200"},
		{length("/big", 101), "413"},
		{chunked("/big", 101), "413"},
		{length("/tiny", 3), "413"},
		{chunked("/tiny", 3), "413"},
		{length("/", 10), "200"},
	} {
		got, _ := rawExchange(t, addr, tc.raw)
		if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") {
			t.Errorf("%.40q: %q, want %s", tc.raw, firstLine(got), tc.status)
		}
	}
	if n := cl.Limited(LimitBody); n != 5 {
		t.Errorf("Limited(body) = %d, want 5", n)
	}
}
