package l7

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
)

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu               sync.Mutex
	opened, closed   int
	started          int
	done             []observed
	handshakes, bads int
}

// observed is what RequestDone saw of one request.
type observed struct {
	status                 int
	attempts               int
	reused                 bool
	connect, firstByte     time.Duration
	received, sent         int64
	proto                  Proto
	id, upstream, reason   string
	fault                  Fault
	method, target, client string
}

func (r *recorder) ConnOpened() { r.mu.Lock(); r.opened++; r.mu.Unlock() }
func (r *recorder) ConnClosed() { r.mu.Lock(); r.closed++; r.mu.Unlock() }
func (r *recorder) Handshake(_ *tls.ConnectionState, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bads++
		return
	}
	r.handshakes++
}
func (r *recorder) StreamOpened()             {}
func (r *recorder) RequestStarted(s *Session) { r.mu.Lock(); r.started++; r.mu.Unlock() }
func (r *recorder) RequestDone(s *Session, err error) {
	o := observed{
		status: s.Status, attempts: s.Attempts, reused: s.Reused, connect: s.Connect, firstByte: s.FirstByte,
		received: s.BytesReceived, sent: s.BytesSent, proto: s.Proto, id: string(s.RequestID),
		reason: EndReason(err), fault: FaultOf(err), method: string(s.Req.Method), target: string(s.Req.Target),
		client: s.Client.String(),
	}
	if n := len(s.Tried); n > 0 {
		o.upstream = s.Tried[n-1].Addr
	}
	r.mu.Lock()
	r.done = append(r.done, o)
	r.mu.Unlock()
}

func (r *recorder) requests() []observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observed(nil), r.done...)
}

// waitDone waits until n requests were reported done.
func (r *recorder) waitDone(t *testing.T, n int) []observed {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := r.requests(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests reported done, want %d", len(r.requests()), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// echoOrigin answers with the X-Request-Id it received in its body and
// an X-Request-Id of its own in the response.
func echoOrigin(t *testing.T) string {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Request-Id", "origin-made")
		fmt.Fprint(w, r.Header.Get("X-Request-Id"))
	}))
	t.Cleanup(o.Close)
	return strings.TrimPrefix(o.URL, "http://")
}

// TestObserverSeesEveryRequest: every request is reported once, with its
// status, timings, byte counts and upstream; connections are paired.
func TestObserverSeesEveryRequest(t *testing.T) {
	backend := echoOrigin(t)
	rec := &recorder{}
	srv := &Server{Proxy: &Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend)}, Observer: rec, RequestID: true}
	addr := startProxy(t, srv)

	k := dialKeepAlive(t, addr)
	sendRaw(t, k, "POST /upload?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if resp, _, err := finalResponse(k, "POST"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	sendRaw(t, k, "GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _, err := finalResponse(k, "GET"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("second request: %v %v", resp, err)
	}
	k.c.Close()
	got := rec.waitDone(t, 2)
	first, second := got[0], got[1]
	if first.status != 200 || first.attempts != 1 || first.reused || first.connect <= 0 || first.firstByte <= 0 ||
		first.received != 5 || first.sent != 32 || first.upstream != backend || first.proto != HTTP11 ||
		first.method != "POST" || first.target != "/upload?x=1" || first.reason != "" {
		t.Errorf("first request observed as %+v", first)
	}
	if !second.reused || second.connect != 0 || second.firstByte <= 0 || second.received != 0 {
		t.Errorf("second request, over the pooled connection, observed as %+v", second)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		opened, closed, started := rec.opened, rec.closed, rec.started
		rec.mu.Unlock()
		if opened == 1 && closed == 1 && started == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections opened %d, closed %d, requests started %d; want 1, 1, 2", opened, closed, started)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestRequestID: a client's valid id travels upstream and back; an
// invalid or missing one is replaced by a fresh one; the upstream's own
// X-Request-Id never reaches the client.
func TestRequestID(t *testing.T) {
	backend := echoOrigin(t)
	rec := &recorder{}
	srv := &Server{Proxy: &Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend)}, Observer: rec, RequestID: true}
	addr := startProxy(t, srv)
	tests := []struct {
		name, header string
		keep         bool
	}{
		{"client's id kept", "X-Request-Id: abc-123.def_456\r\n", true},
		{"no id", "", false},
		{"id with a space", "X-Request-Id: a b\r\n", false},
		{"id with a quote", "X-Request-Id: a\"b\r\n", false},
		{"id too long", "X-Request-Id: " + strings.Repeat("a", maxRequestID+1) + "\r\n", false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := dialKeepAlive(t, addr)
			sendRaw(t, k, "GET / HTTP/1.1\r\nHost: x\r\n"+tc.header+"\r\n")
			resp, body, err := finalResponse(k, "GET")
			if err != nil {
				t.Fatal(err)
			}
			ids := resp.Header.Values("X-Request-Id")
			if len(ids) != 1 || ids[0] != body {
				t.Fatalf("response ids %q, upstream saw %q: want the one id the upstream saw", ids, body)
			}
			if want := strings.TrimSuffix(strings.TrimPrefix(tc.header, "X-Request-Id: "), "\r\n"); tc.keep && body != want {
				t.Errorf("upstream saw id %q, want the client's %q", body, want)
			}
			if !tc.keep && (len(body) != 32 || strings.Trim(body, "0123456789abcdef") != "") {
				t.Errorf("generated id %q, want 32 hex digits", body)
			}
			if got := rec.waitDone(t, i+1)[i].id; got != body {
				t.Errorf("observer saw id %q, want %q", got, body)
			}
		})
	}
}

// TestFailedRequestAnswerSaysConnectionClose: weir closes a client
// connection after a failed request, so its error answer must say
// Connection: close, or a keep-alive client sends its next request into
// the close. (It did not: a client's second request met EOF.)
func TestFailedRequestAnswerSaysConnectionClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name   string
		lb     Selector
		status int
	}{
		{"refused", balancedPool(t, &lb.RoundRobin{}, lb.Options{}, refused), 502},
		{"no healthy backend", balancedPool(t, &lb.RoundRobin{}, lb.Options{}), 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startProxy(t, &Server{Proxy: &Balanced{LB: tc.lb}})
			k := dialKeepAlive(t, addr)
			sendRaw(t, k, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, _, err := finalResponse(k, "GET")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || !resp.Close {
				t.Errorf("status %d, Connection: close %v; want %d and true", resp.StatusCode, resp.Close, tc.status)
			}
		})
	}
}

// TestMalformedRequestIsObserved: a request weir cannot parse is still a
// request, answered 400, counted as the client's fault.
func TestMalformedRequestIsObserved(t *testing.T) {
	rec := &recorder{}
	addr := startProxy(t, &Server{Proxy: &Respond{Status: 200}, Observer: rec})
	k := dialKeepAlive(t, addr)
	sendRaw(t, k, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
	if resp, _, err := finalResponse(k, "GET"); err != nil || resp.StatusCode != 400 {
		t.Fatalf("malformed request answered %v, %v; want 400", resp, err)
	}
	got := rec.waitDone(t, 1)[0]
	if got.status != 400 || got.fault != ClientFault || got.reason != "client_protocol" {
		t.Errorf("malformed request observed as %+v", got)
	}
}

func TestEndReason(t *testing.T) {
	tests := []struct {
		err        error
		want, upst string
	}{
		{nil, "", ""},
		{fmt.Errorf("%w: %w", ErrDownstream, io.EOF), "client_closed", ""},
		{fmt.Errorf("%w: %w", ErrDownstream, timeoutError{}), "client_timeout", ""},
		{fmt.Errorf("%w: %w", ErrDownstream, malformedChunk()), "client_protocol", ""},
		{fmt.Errorf("%w: x: %w", ErrUpstreamConnect, syscall.ECONNREFUSED), "upstream_refused", ReasonRefused},
		{fmt.Errorf("%w: x: %w", ErrUpstreamConnect, timeoutError{}), "upstream_timeout", ReasonTimeout},
		{fmt.Errorf("%w: x: %w", ErrUpstreamTimeout, errors.New("deadline")), "upstream_timeout", ReasonTimeout},
		{fmt.Errorf("%w: x: %w: %w", ErrUpstreamConnect, errUpstreamTLS, errors.New("bad certificate")), "upstream_tls", ReasonTLS},
		{fmt.Errorf("%w: x: %w", ErrUpstreamProtocol, syscall.ECONNRESET), "upstream_reset", ReasonReset},
		{fmt.Errorf("%w: x: %w", ErrUpstreamProtocol, io.ErrUnexpectedEOF), "upstream_reset", ReasonReset},
		{fmt.Errorf("%w: x: %w", ErrUpstreamProtocol, &h1.Error{Status: 502}), "upstream_protocol", ReasonProtocol},
		{ErrNoHealthyUpstream, "upstream_unavailable", ReasonUnavailable},
		{fmt.Errorf("%w: x", ErrUpstreamConnect), "upstream_error", ReasonOther},
		{fmt.Errorf("%w: boom", ErrFilter), "proxy_error", ""},
	}
	for _, tc := range tests {
		if got := EndReason(tc.err); got != tc.want {
			t.Errorf("EndReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
		if got := UpstreamReason(tc.err); got != tc.upst {
			t.Errorf("UpstreamReason(%v) = %q, want %q", tc.err, got, tc.upst)
		}
	}
}

// balance is an Observer that counts what opens and what closes.
type balance struct {
	opened, closed, started, done atomic.Int64
}

func (b *balance) ConnOpened()                           { b.opened.Add(1) }
func (b *balance) ConnClosed()                           { b.closed.Add(1) }
func (b *balance) Handshake(*tls.ConnectionState, error) {}
func (b *balance) StreamOpened()                         {}
func (b *balance) RequestStarted(*Session)               { b.started.Add(1) }
func (b *balance) RequestDone(s *Session, _ error)       { b.done.Add(1) }

// check waits until the counts balance, after the server was closed:
// Close returns before the last connections' goroutines are done.
func (b *balance) check(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.opened.Load() != b.closed.Load() || b.started.Load() != b.done.Load() {
		if time.Now().After(deadline) {
			t.Errorf("observer out of balance after Close: %d connections opened, %d closed; %d requests started, %d done",
				b.opened.Load(), b.closed.Load(), b.started.Load(), b.done.Load())
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// idSetter is a Balanced whose ResponseFilter sets X-Request-Id itself,
// as a route's response header rule does.
type idSetter struct{ *Balanced }

func (p idSetter) ResponseFilter(s *Session, resp *h1.Response) error {
	resp.Header.Set(RequestIDHeader, "from-filter")
	return nil
}

// TestRequestIDSetByFilter: an X-Request-Id a ResponseFilter sets
// stands instead of the proxy's, once. (It was sent twice: the filter's
// and then the proxy's.)
func TestRequestIDSetByFilter(t *testing.T) {
	backend := echoOrigin(t)
	srv := &Server{Proxy: idSetter{&Balanced{LB: balancedPool(t, &lb.RoundRobin{}, lb.Options{}, backend)}}, RequestID: true}
	addr := startProxy(t, srv)
	k := dialKeepAlive(t, addr)
	sendRaw(t, k, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _, err := finalResponse(k, "GET")
	if err != nil {
		t.Fatal(err)
	}
	if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] != "from-filter" {
		t.Errorf("response ids %q, want only the filter's", ids)
	}
}
