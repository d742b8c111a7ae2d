package lb

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seenRequest is what a test server records of a request.
type seenRequest struct {
	method, uri, host string
	header            http.Header
	close             bool
}

// httpProbeServer is a loopback test server for HTTPCheck that records
// requests and counts connections.
type httpProbeServer struct {
	*httptest.Server
	backend  *Backend
	requests chan seenRequest
	conns    atomic.Int64
	// snis receives the SNI of each TLS handshake.
	snis chan string
}

// newHTTPProbeServer starts a server for handler on 127.0.0.1, with TLS
// when tlsConfig is not nil.
func newHTTPProbeServer(t *testing.T, handler http.HandlerFunc, tlsConfig *tls.Config) *httpProbeServer {
	t.Helper()
	s := &httpProbeServer{
		requests: make(chan seenRequest, 64),
		snis:     make(chan string, 64),
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.requests <- seenRequest{method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(), close: r.Close}:
		default:
			t.Errorf("more requests than the record buffer holds")
		}
		handler(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	// Handshakes the client rejects on purpose are not worth a log line.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsConfig != nil {
		s.TLS = tlsConfig.Clone()
		s.TLS.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			s.snis <- hello.ServerName
			return nil, nil
		}
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	s.backend = probeBackend(t, s.Listener.Addr())
	return s
}

// lastRequest returns the request the server received last; the check
// has returned, so the handler has run.
func (s *httpProbeServer) lastRequest(t *testing.T) seenRequest {
	t.Helper()
	var last seenRequest
	for n := 0; ; n++ {
		select {
		case r := <-s.requests:
			last = r
		default:
			if n == 0 {
				t.Fatalf("the server received no request")
			}
			return last
		}
	}
}

// stallUntil blocks a handler until the client goes away or release is
// closed, whichever comes first.
func stallUntil(r *http.Request, release <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-release:
	}
}

func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestHTTPCheckVerdict(t *testing.T) {
	chunked := func(w http.ResponseWriter, _ *http.Request) {
		// "ready" split across two chunks on the wire.
		io.WriteString(w, "status: rea")
		w.(http.Flusher).Flush()
		io.WriteString(w, "dy\n")
	}
	redirect := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}

	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   *HTTPCheck
		wantIs  error
		wantMsg string // with %s for the server's URL
	}{
		{name: "200", handler: respond(200, "ok")},
		{name: "204", handler: respond(204, "")},
		{
			name: "500", handler: respond(500, "oops"), wantIs: ErrUnexpectedStatus,
			wantMsg: "GET %s/: unexpected status 500, want 2xx",
		},
		{
			name: "redirect not followed", handler: redirect, check: &HTTPCheck{Path: "/health"}, wantIs: ErrUnexpectedStatus,
			wantMsg: "GET %s/health: unexpected status 302, want 2xx",
		},
		{name: "500 expected", handler: respond(500, ""), check: &HTTPCheck{Expect: MustParseStatusSet("500")}},
		{
			name: "200 when 500 expected", handler: respond(200, ""), check: &HTTPCheck{Expect: MustParseStatusSet("500")},
			wantIs: ErrUnexpectedStatus, wantMsg: "GET %s/: unexpected status 200, want 500",
		},
		{name: "in range", handler: redirect, check: &HTTPCheck{Expect: MustParseStatusSet("200-204,300-399")}},
		{
			name: "out of range", handler: respond(205, ""), check: &HTTPCheck{Expect: MustParseStatusSet("200-204,300-399")},
			wantIs: ErrUnexpectedStatus, wantMsg: "GET %s/: unexpected status 205, want 200-204,3xx",
		},
		{name: "body contains", handler: respond(200, "status: ready\n"), check: &HTTPCheck{BodyContains: "ready"}},
		{name: "body contains across chunks", handler: chunked, check: &HTTPCheck{BodyContains: "ready"}},
		{
			name: "body lacks", handler: respond(200, "status: starting\n"), check: &HTTPCheck{BodyContains: "ready"},
			wantIs: ErrBodyMismatch, wantMsg: `GET %s/: body does not contain "ready"`,
		},
		{
			name: "status checked before body", handler: respond(503, "ready"), check: &HTTPCheck{BodyContains: "ready"},
			wantIs: ErrUnexpectedStatus,
		},
		{name: "body of exactly MaxBody", handler: respond(200, "0123456789"), check: &HTTPCheck{BodyContains: "789", MaxBody: 10}},
		{
			name: "bad method", handler: respond(200, ""), check: &HTTPCheck{Method: "GET /"},
			wantIs: ErrBadHealthCheck,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := cmp.Or(tt.check, &HTTPCheck{})
			srv := newHTTPProbeServer(t, tt.handler, nil)
			defer check.Close()
			err := checkWithin(t, t.Context(), check, srv.backend)
			msg := tt.wantMsg
			if msg != "" {
				msg = fmt.Sprintf(msg, srv.URL)
			}
			assertProbeError(t, err, tt.wantIs, msg, nil)
		})
	}
}

func TestHTTPCheckRequest(t *testing.T) {
	tests := []struct {
		name  string
		check *HTTPCheck
		// want checks the request the server saw; host is the address
		// the check connected to.
		want func(t *testing.T, r seenRequest, host string)
	}{
		{
			name: "defaults",
			want: func(t *testing.T, r seenRequest, host string) {
				wantRequestField(t, "method", r.method, "GET")
				wantRequestField(t, "URI", r.uri, "/")
				wantRequestField(t, "Host", r.host, host)
				wantRequestField(t, "User-Agent", r.header.Get("User-Agent"), checkUserAgent)
				wantRequestField(t, "Connection", r.header.Get("Connection"), "close")
			},
		},
		{
			name:  "method and path",
			check: &HTTPCheck{Method: http.MethodHead, Path: "/health?deep=1"},
			want: func(t *testing.T, r seenRequest, _ string) {
				wantRequestField(t, "method", r.method, "HEAD")
				wantRequestField(t, "URI", r.uri, "/health?deep=1")
			},
		},
		{
			name: "host and headers",
			check: &HTTPCheck{Host: "api.example.test", Header: http.Header{
				"X-Check":    {"1"},
				"User-Agent": {"probe/2"},
			}},
			want: func(t *testing.T, r seenRequest, _ string) {
				wantRequestField(t, "Host", r.host, "api.example.test")
				wantRequestField(t, "X-Check", r.header.Get("X-Check"), "1")
				wantRequestField(t, "User-Agent", r.header.Get("User-Agent"), "probe/2")
			},
		},
		{
			name:  "reuse keeps the connection",
			check: &HTTPCheck{Reuse: true},
			want: func(t *testing.T, r seenRequest, _ string) {
				if r.close {
					t.Errorf("request asked to close the connection")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := cmp.Or(tt.check, &HTTPCheck{})
			srv := newHTTPProbeServer(t, respond(200, "ok"), nil)
			defer check.Close()
			header := check.Header.Clone()
			if err := checkWithin(t, t.Context(), check, srv.backend); err != nil {
				t.Fatalf("check failed: %v", err)
			}
			tt.want(t, srv.lastRequest(t), srv.backend.Addr)
			if fmt.Sprint(header) != fmt.Sprint(check.Header) {
				t.Errorf("check changed its Header to %v", check.Header)
			}
		})
	}
}

func wantRequestField(t *testing.T, field, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("server saw %s %q, want %q", field, got, want)
	}
}

func TestHTTPCheckPortOverride(t *testing.T) {
	srv := newHTTPProbeServer(t, respond(200, "ok"), nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	refused := probeBackendAt(t, probeRefusedAddr(t))

	check := &HTTPCheck{}
	defer check.Close()
	err := checkWithin(t, t.Context(), check, refused)
	if err == nil || !strings.Contains(err.Error(), "connect "+refused.Addr) {
		t.Fatalf("check of the refused port: %v, want a connect error", err)
	}

	check.Close() // fields may change only between Close and the next Check
	check.Port, _ = strconv.Atoi(port)
	if err := checkWithin(t, t.Context(), check, refused); err != nil {
		t.Fatalf("check with Port %s: %v", port, err)
	}
	host, _ := refused.HostPort()
	wantRequestField(t, "Host", srv.lastRequest(t).host, net.JoinHostPort(host, port))
}

func TestHTTPCheckUnix(t *testing.T) {
	// Two sockets: the transport pools connections by URL host, so each
	// socket must get its own.
	var servers [2]struct {
		backend  *Backend
		requests atomic.Int64
		hosts    chan string
	}
	for i := range servers {
		s := &servers[i]
		s.hosts = make(chan string, 8)
		ln := probeUnixListener(t)
		s.backend = probeBackend(t, ln.Addr())
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			s.hosts <- r.Host
			if r.URL.Path == "/fail" {
				w.WriteHeader(500)
			}
		})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(ln)
		}()
		t.Cleanup(func() {
			srv.Close()
			<-done
		})
	}

	check := &HTTPCheck{Reuse: true}
	defer check.Close()
	for _, i := range []int{0, 1, 0} {
		if err := checkWithin(t, t.Context(), check, servers[i].backend); err != nil {
			t.Fatalf("check of %s: %v", servers[i].backend.Addr, err)
		}
		wantRequestField(t, "Host", <-servers[i].hosts, "localhost")
	}
	if a, b := servers[0].requests.Load(), servers[1].requests.Load(); a != 2 || b != 1 {
		t.Errorf("sockets served %d and %d requests, want 2 and 1", a, b)
	}

	failing := &HTTPCheck{Path: "/fail"}
	defer failing.Close()
	err := checkWithin(t, t.Context(), failing, servers[1].backend)
	want := "GET http://" + servers[1].backend.Addr + ":/fail: unexpected status 500, want 2xx"
	assertProbeError(t, err, ErrUnexpectedStatus, want, nil)
}

func TestHTTPCheckTimeout(t *testing.T) {
	stallHeaders := func(release <-chan struct{}) http.HandlerFunc {
		return func(_ http.ResponseWriter, r *http.Request) { stallUntil(r, release) }
	}
	stallBody := func(release <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			stallUntil(r, release)
		}
	}
	withDeadline := func(d time.Duration) func(*testing.T) context.Context {
		return func(t *testing.T) context.Context {
			ctx, cancel := context.WithTimeout(t.Context(), d)
			t.Cleanup(cancel)
			return ctx
		}
	}

	tests := []struct {
		name    string
		handler func(release <-chan struct{}) http.HandlerFunc
		check   *HTTPCheck
		ctx     func(*testing.T) context.Context
		wantMsg string // with %s for the server's URL
	}{
		{
			name: "slow headers", handler: stallHeaders, check: &HTTPCheck{Timeout: 100 * time.Millisecond},
			wantMsg: "GET %s/: timed out after 100ms",
		},
		{
			name: "slow body", handler: stallBody, check: &HTTPCheck{Timeout: 100 * time.Millisecond, BodyContains: "ready"},
			wantMsg: "GET %s/: reading body: timed out after 100ms",
		},
		{
			name: "context deadline earlier than timeout", handler: stallHeaders,
			check: &HTTPCheck{Timeout: time.Hour, Reuse: true}, ctx: withDeadline(100 * time.Millisecond),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := cmp.Or(tt.check, &HTTPCheck{})
			release := make(chan struct{})
			srv := newHTTPProbeServer(t, tt.handler(release), nil)
			// Cleanups run last first: release the handlers, then Close
			// the server, which waits for them.
			t.Cleanup(func() { close(release) })
			defer check.Close()
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			err := checkWithin(t, ctx, check, srv.backend)
			msg := tt.wantMsg
			if msg != "" {
				msg = fmt.Sprintf(msg, srv.URL)
			}
			assertProbeError(t, err, ErrCheckTimeout, msg, nil)
		})
	}
}

func TestHTTPCheckTLS(t *testing.T) {
	ca := newTestCA(t)
	srv := newHTTPProbeServer(t, respond(200, "ok"), ca.serverConfig("127.0.0.1", "api.test"))
	withServerName := ca.clientConfig()
	withServerName.ServerName = "api.test"

	tests := []struct {
		name    string
		check   *HTTPCheck
		wantSNI string
		wantAs  any // nil: healthy
	}{
		{name: "IP backend, no SNI", check: &HTTPCheck{TLS: ca.clientConfig()}, wantSNI: ""},
		{name: "SNI", check: &HTTPCheck{TLS: ca.clientConfig(), SNI: "api.test"}, wantSNI: "api.test"},
		{name: "config ServerName", check: &HTTPCheck{TLS: withServerName}, wantSNI: "api.test"},
		{name: "reuse", check: &HTTPCheck{TLS: ca.clientConfig(), SNI: "api.test", Reuse: true}, wantSNI: "api.test"},
		{
			name: "untrusted", check: &HTTPCheck{TLS: &tls.Config{MinVersion: tls.VersionTLS12}},
			wantSNI: "", wantAs: new(x509.UnknownAuthorityError),
		},
		{
			name: "name not in certificate", check: &HTTPCheck{TLS: ca.clientConfig(), SNI: "other.test"},
			wantSNI: "other.test", wantAs: new(x509.HostnameError),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := cmp.Or(tt.check, &HTTPCheck{})
			defer check.Close()
			err := checkWithin(t, t.Context(), check, srv.backend)
			assertProbeError(t, err, nil, "", tt.wantAs)
			if tt.wantAs != nil && !strings.Contains(err.Error(), "tls handshake with "+srv.backend.Addr) {
				t.Errorf("error %q does not name the handshake", err)
			}
			select {
			case got := <-srv.snis:
				wantRequestField(t, "SNI", got, tt.wantSNI)
			default:
				t.Fatalf("the server saw no handshake")
			}
			if tt.wantAs == nil && srv.lastRequest(t).uri != "/" {
				t.Errorf("request did not reach the handler")
			}
		})
	}
}

func TestHTTPCheckConnections(t *testing.T) {
	big := strings.Repeat("x", 1000)
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		check     *HTTPCheck
		closeAt   int // close the check before this check number; 0: never
		wantConns int64
	}{
		{name: "fresh connection per check", handler: respond(200, "ok"), wantConns: 3},
		{name: "reuse", handler: respond(200, "ok"), check: &HTTPCheck{Reuse: true}, wantConns: 1},
		{name: "reuse after Close", handler: respond(200, "ok"), check: &HTTPCheck{Reuse: true}, closeAt: 2, wantConns: 2},
		{name: "reuse, body past MaxBody", handler: respond(200, big), check: &HTTPCheck{Reuse: true, MaxBody: 100}, wantConns: 3},
		{name: "reuse, body of exactly MaxBody", handler: respond(200, big), check: &HTTPCheck{Reuse: true, MaxBody: 1000}, wantConns: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := cmp.Or(tt.check, &HTTPCheck{})
			srv := newHTTPProbeServer(t, tt.handler, nil)
			defer check.Close()
			for i := 1; i <= 3; i++ {
				if i == tt.closeAt {
					check.Close()
				}
				if err := checkWithin(t, t.Context(), check, srv.backend); err != nil {
					t.Fatalf("check %d: %v", i, err)
				}
			}
			if got := srv.conns.Load(); got != tt.wantConns {
				t.Errorf("3 checks opened %d connections, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestHTTPCheckConcurrent(t *testing.T) {
	srv := newHTTPProbeServer(t, respond(200, "ok"), nil)
	check := &HTTPCheck{Reuse: true}
	defer check.Close()
	const workers, rounds = 4, 5
	errs := make(chan error, workers*rounds)
	clients := make(chan *http.Client, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				errs <- check.Check(t.Context(), srv.backend)
			}
			clients <- check.httpClient()
		})
	}
	wg.Wait()
	close(errs)
	close(clients)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent check: %v", err)
		}
	}
	first := <-clients
	for c := range clients {
		if c != first {
			t.Fatalf("concurrent checks built more than one client")
		}
	}
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func TestHTTPCheckBoundedBody(t *testing.T) {
	const maxBody = 4096
	const needle = "NEEDLE"
	// endless streams filler after prefix until the client goes away.
	endless := func(prefix string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			if _, err := io.WriteString(w, prefix); err != nil {
				return
			}
			chunk := bytes.Repeat([]byte("a"), 1024)
			for range 1 << 18 { // 256 MiB: far past any bound, yet finite
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}
	filler := func(n int) string { return strings.Repeat("a", n) }

	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   *HTTPCheck
		wantIs  error
	}{
		{name: "no body check", handler: endless("")},
		{name: "reuse", handler: endless(""), check: &HTTPCheck{Reuse: true}},
		{name: "text at the end of the bound", handler: endless(filler(maxBody-len(needle)) + needle), check: &HTTPCheck{BodyContains: needle}},
		{name: "text past the bound", handler: endless(filler(maxBody+100) + needle), check: &HTTPCheck{BodyContains: needle}, wantIs: ErrBodyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := cmp.Or(tt.check, &HTTPCheck{})
			srv := newHTTPProbeServer(t, tt.handler, nil)
			var read atomic.Int64
			check.MaxBody = maxBody
			check.Timeout = probeHangLimit
			check.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
				conn, err := dialProbe(ctx, network, address)
				if err != nil {
					return nil, err
				}
				return countingConn{Conn: conn, read: &read}, nil
			}
			defer check.Close()
			err := checkWithin(t, t.Context(), check, srv.backend)
			assertProbeError(t, err, tt.wantIs, "", nil)
			if tt.wantIs != nil && !strings.Contains(err.Error(), fmt.Sprintf("in its first %d bytes", maxBody)) {
				t.Errorf("error %q does not say the body was cut short", err)
			}
			// Headers, chunk framing and one bufio.Reader fill (4 KiB) may
			// come on top of the body bound.
			const slack = 16 << 10
			if got := read.Load(); got > maxBody+slack {
				t.Errorf("check read %d bytes, want at most %d", got, maxBody+slack)
			}
		})
	}
}

func TestHTTPCheckValidate(t *testing.T) {
	tests := []struct {
		name  string
		check *HTTPCheck
		want  string // error text after "bad health check: "; empty: valid
	}{
		{name: "zero value"},
		{name: "full", check: &HTTPCheck{Method: "OPTIONS", Path: "/health?x=1", Port: 8081, Timeout: time.Second, MaxBody: 10, BodyContains: "ok"}},
		{name: "method", check: &HTTPCheck{Method: "GET /"}, want: `method "GET /" is not an HTTP token`},
		{name: "relative path", check: &HTTPCheck{Path: "health"}, want: `path "health" must start with /`},
		{name: "port", check: &HTTPCheck{Port: 65536}, want: "port 65536 must be 1 to 65535 (0 keeps the backend's)"},
		{name: "negative port", check: &HTTPCheck{Port: -1}, want: "port -1 must be 1 to 65535 (0 keeps the backend's)"},
		{name: "negative MaxBody", check: &HTTPCheck{MaxBody: -1}, want: "negative MaxBody -1"},
		{name: "negative timeout", check: &HTTPCheck{Timeout: -1}, want: "negative timeout -1ns"},
		{name: "HEAD with body text", check: &HTTPCheck{Method: "HEAD", BodyContains: "ok"}, want: `BodyContains "ok" with HEAD, which has no body`},
		{name: "body text past MaxBody", check: &HTTPCheck{MaxBody: 2, BodyContains: "ok!"}, want: "BodyContains is 3 bytes, longer than MaxBody 2"},
		{name: "SNI without TLS", check: &HTTPCheck{SNI: "api.test"}, want: `SNI "api.test" set without TLS`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := cmp.Or(tt.check, &HTTPCheck{})
			err := check.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			assertProbeError(t, err, ErrBadHealthCheck, "bad health check: "+tt.want, nil)
			if checkWithin(t, t.Context(), check, probeBackendAt(t, "127.0.0.1:1")) == nil {
				t.Errorf("Check passed with an invalid configuration")
			}
		})
	}
}

func TestBodyMatcher(t *testing.T) {
	tests := []struct {
		needle string
		writes []string
		want   bool
	}{
		{needle: "ready", writes: []string{"status: ready"}, want: true},
		{needle: "ready", writes: []string{"rea", "dy"}, want: true},
		{needle: "ready", writes: []string{"r", "e", "a", "d", "y"}, want: true},
		{needle: "ready", writes: []string{"xxre", "", "ady"}, want: true},
		{needle: "ready", writes: []string{"rea", "xdy"}, want: false},
		{needle: "ready", writes: []string{"read", "read", "ready"}, want: true},
		{needle: "ready", writes: []string{"rread", "y"}, want: true},
		{needle: "ready", writes: []string{"ready"[:4]}, want: false},
		{needle: "a", writes: []string{"bbb", "a"}, want: true},
		{needle: "a", writes: []string{"bbb", "b"}, want: false},
		{needle: "", writes: []string{"anything"}, want: false},
		{needle: "abcabd", writes: []string{"abcab", "cabd"}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.needle+"/"+strings.Join(tt.writes, "|"), func(t *testing.T) {
			m := newBodyMatcher(tt.needle)
			for _, w := range tt.writes {
				if n, err := m.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if m.found != tt.want {
				t.Errorf("found = %v, want %v", m.found, tt.want)
			}
		})
	}
}

func TestParseStatusSet(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String of the set
		has     []int  // codes in the set
		hasNot  []int  // codes not in it
		wantErr string // error text after `bad status set: "<in>": `
	}{
		{in: "200", want: "200", has: []int{200}, hasNot: []int{201, 199, 0}},
		{in: "200,204,300-399", want: "200,204,3xx", has: []int{200, 204, 300, 350, 399}, hasNot: []int{201, 299, 400}},
		{in: " 2xx , 404 ", want: "2xx,404", has: []int{200, 299, 404}, hasNot: []int{300, 403}},
		{in: "5XX", want: "5xx", has: []int{500, 599}, hasNot: []int{499, 600}},
		{in: "250-399", want: "250-299,3xx", has: []int{250, 300}, hasNot: []int{249, 400}},
		{in: "100-599", want: "1xx,2xx,3xx,4xx,5xx", has: []int{100, 599}, hasNot: []int{99, 600, -1}},
		{in: "204-205,200", want: "200,204-205", has: []int{200, 204, 205}, hasNot: []int{201, 206}},
		{in: "200-200", want: "200", has: []int{200}},
		{in: "599", want: "599", has: []int{599}},
		{in: "", wantErr: "empty"},
		{in: "200,", wantErr: "empty item"},
		{in: "abc", wantErr: `"abc" is not a status code: want three digits`},
		{in: "+200", wantErr: `"+200" is not a status code: want three digits`},
		{in: "2000", wantErr: `"2000" is not a status code: want three digits`},
		{in: "099", wantErr: "status 99 is outside 100-599"},
		{in: "600", wantErr: "status 600 is outside 100-599"},
		{in: "300-200", wantErr: `range "300-200" is reversed`},
		{in: "200-", wantErr: `"" is not a status code: want three digits`},
		{in: "6xx", wantErr: `"6xx" is not a status class 1xx to 5xx`},
		{in: "20xx", wantErr: `"20xx" is not a status class 1xx to 5xx`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			set, err := ParseStatusSet(tt.in)
			if tt.wantErr != "" {
				want := fmt.Sprintf("bad status set: %q: %s", tt.in, tt.wantErr)
				if tt.in == "" {
					want = "bad status set: empty"
				}
				assertProbeError(t, err, ErrBadStatusSet, want, nil)
				return
			}
			if err != nil {
				t.Fatalf("ParseStatusSet: %v", err)
			}
			if got := set.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			for _, code := range tt.has {
				if !set.Contains(code) {
					t.Errorf("set lacks %d", code)
				}
			}
			for _, code := range tt.hasNot {
				if set.Contains(code) {
					t.Errorf("set contains %d", code)
				}
			}
			again, err := ParseStatusSet(set.String())
			if err != nil || again != set {
				t.Errorf("String() %q does not parse back to the same set: %v", set, err)
			}
		})
	}
}

func TestStatusSetZeroValueIs2xx(t *testing.T) {
	var set StatusSet
	for code, want := range map[int]bool{199: false, 200: true, 204: true, 299: true, 300: false, 500: false} {
		if got := set.Contains(code); got != want {
			t.Errorf("zero StatusSet.Contains(%d) = %v, want %v", code, got, want)
		}
	}
	if got := set.String(); got != "2xx" {
		t.Errorf("zero StatusSet.String() = %q, want 2xx", got)
	}
}

func TestStatusSetText(t *testing.T) {
	var cfg struct {
		Expect StatusSet `json:"expect"`
	}
	if err := json.Unmarshal([]byte(`{"expect":"200-299,404"}`), &cfg); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if !cfg.Expect.Contains(404) || cfg.Expect.Contains(403) {
		t.Errorf("unmarshalled set %v", cfg.Expect)
	}
	out, err := json.Marshal(cfg)
	if err != nil || string(out) != `{"expect":"2xx,404"}` {
		t.Errorf("marshal = %s, %v", out, err)
	}
	err = json.Unmarshal([]byte(`{"expect":"2xx,700"}`), &cfg)
	if !errors.Is(err, ErrBadStatusSet) {
		t.Errorf("unmarshal of a bad set: %v, want ErrBadStatusSet", err)
	}
}

func BenchmarkHTTPCheck(b *testing.B) {
	srv := httptest.NewServer(respond(200, "ok"))
	defer srv.Close()
	backend, err := NewBackend(srv.Listener.Addr().String(), 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) {
			check := &HTTPCheck{Reuse: reuse, BodyContains: "ok"}
			defer check.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := check.Check(b.Context(), &backend); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTCPCheck(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	backend, err := NewBackend(ln.Addr().String(), 1)
	if err != nil {
		b.Fatal(err)
	}
	check := &TCPCheck{}
	b.ReportAllocs()
	for b.Loop() {
		if err := check.Check(b.Context(), &backend); err != nil {
			b.Fatal(err)
		}
	}
}
