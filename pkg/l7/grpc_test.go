package l7

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/l7/h1"
	"github.com/weir-lb/weir/pkg/lb"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcTestTimeout bounds every RPC of these tests: a proxy that holds
// bytes back, or never ends a stream, fails them instead of hanging.
const grpcTestTimeout = 10 * time.Second

// grpcFront is weir in front of gRPC backends: one Server with a plain
// listener (h2c) and a TLS one (ALPN h2).
type grpcFront struct {
	plain, tls string
	pki        *testPKI
	logs       *sessionLog
}

// sessionLog records what the Logger phase saw of each request. Log
// runs after the answer went out, so a test waits for its entry.
type sessionLog struct {
	entries chan loggedSession
}

func newSessionLog() *sessionLog { return &sessionLog{entries: make(chan loggedSession, 64)} }

type loggedSession struct {
	status, grpcStatus int
	grpc               bool
	fault              Fault
}

func (l *sessionLog) Log(s *Session, err error) {
	select {
	case l.entries <- loggedSession{s.Status, s.GRPCStatus, s.GRPC, FaultOf(err)}:
	default: // a test that does not look
	}
}

// next returns the next request logged.
func (l *sessionLog) next(t *testing.T) loggedSession {
	t.Helper()
	select {
	case e := <-l.entries:
		return e
	case <-time.After(grpcTestTimeout):
		t.Fatal("no request was logged")
		return loggedSession{}
	}
}

// loggedBalanced is Balanced with a Logger, and optionally an upstream
// request filter that hides grpc-timeout from the backend (so that only
// the proxy can enforce it).
type loggedBalanced struct {
	*Balanced
	*sessionLog
	hideTimeout bool
}

func (b *loggedBalanced) UpstreamRequestFilter(s *Session, req *h1.Request) error {
	if b.hideTimeout {
		req.Header.Del("Grpc-Timeout")
	}
	return b.Balanced.UpstreamRequestFilter(s, req)
}

func startGRPCFront(t *testing.T, pki *testPKI, proxy *loggedBalanced) *grpcFront {
	t.Helper()
	srv := &Server{Proxy: proxy, WriteTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pki.cert(t, "front.example")}, NextProtos: []string{"h2", "http/1.1"}})
	f := &grpcFront{tls: serveOn(t, srv, tln), pki: pki, logs: proxy.sessionLog}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(plain)
	f.plain = plain.Addr().String()
	return f
}

// client dials the front over TLS (h2) or plain TCP (h2c).
func (f *grpcFront) client(t *testing.T, overTLS bool) testpb.TestServiceClient {
	t.Helper()
	if overTLS {
		return testenv.GRPCClient(t, f.tls, &tls.Config{RootCAs: f.pki.roots, ServerName: "front.example"})
	}
	return testenv.GRPCClient(t, f.plain, nil)
}

// grpcSetup is one way of proxying gRPC: TLS or h2c towards the client
// and towards the backend.
type grpcSetup struct {
	name           string
	downTLS, upTLS bool
}

var grpcSetups = []grpcSetup{
	{"h2c to h2c", false, false},
	{"h2c to TLS h2", false, true},
	{"TLS h2 to h2c", true, false},
	{"TLS h2 to TLS h2", true, true},
}

// startGRPCPath starts a backend and weir in front of it as setup says,
// and returns a client of weir.
func startGRPCPath(t *testing.T, setup grpcSetup, svc *testenv.GRPCService, hideTimeout bool) (testpb.TestServiceClient, *grpcFront, *grpc.Server, *lb.LoadBalancer[*lb.RoundRobin], string) {
	t.Helper()
	pki := newTestPKI(t)
	var cfg *tls.Config
	peer := Peer{ALPN: ALPNH2C}
	if setup.upTLS {
		cfg = &tls.Config{Certificates: []tls.Certificate{pki.cert(t, "backend.internal")}}
		peer = Peer{TLS: true, SNI: "backend.internal", RootCAs: pki.roots, ALPN: ALPNH2}
	}
	addr, backend, _ := testenv.GRPCBackend(t, cfg, svc, false)
	pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, addr)
	front := startGRPCFront(t, pki, &loggedBalanced{Balanced: &Balanced{LB: pool, Template: peer}, sessionLog: newSessionLog(), hideTimeout: hideTimeout})
	return front.client(t, setup.downTLS), front, backend, pool, addr
}

// TestGRPCThroughProxy runs every kind of RPC through weir, over each
// combination of TLS h2 and h2c on both sides.
func TestGRPCThroughProxy(t *testing.T) {
	for _, setup := range grpcSetups {
		t.Run(setup.name, func(t *testing.T) {
			client, _, _, _, _ := startGRPCPath(t, setup, testenv.NewGRPCService(), false)
			ctx, cancel := context.WithTimeout(context.Background(), grpcTestTimeout)
			defer cancel()

			t.Run("unary with trailers", func(t *testing.T) {
				var trailer metadata.MD
				body := bytes.Repeat([]byte("u"), 100<<10)
				resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}}, grpc.Trailer(&trailer))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(resp.GetPayload().GetBody(), body) {
					t.Errorf("echoed %d bytes, want %d", len(resp.GetPayload().GetBody()), len(body))
				}
				if got := trailer.Get("x-echo-len"); len(got) != 1 || got[0] != fmt.Sprint(len(body)) {
					t.Errorf("trailer x-echo-len %v, want [%d]", got, len(body))
				}
			})

			t.Run("server streaming", func(t *testing.T) {
				testenv.CheckGRPCServerStreaming(t, ctx, client, []int32{1, 1000, 70000, 5})
			})

			t.Run("client streaming", func(t *testing.T) {
				stream, err := client.StreamingInputCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				total := 0
				for i := range 20 {
					body := bytes.Repeat([]byte("c"), i*1000)
					total += len(body)
					if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
						t.Fatal(err)
					}
				}
				resp, err := stream.CloseAndRecv()
				if err != nil {
					t.Fatal(err)
				}
				if int(resp.GetAggregatedPayloadSize()) != total {
					t.Errorf("backend received %d bytes, want %d", resp.GetAggregatedPayloadSize(), total)
				}
			})

			// Lock-step: a proxy holding bytes back in either direction
			// deadlocks, and fails on grpcTestTimeout.
			t.Run("bidirectional streaming, lock-step", func(t *testing.T) {
				testenv.CheckGRPCLockStep(t, ctx, client, 50)
			})

			// The backend's own error is a trailers-only answer: relayed
			// as one, status and message intact.
			t.Run("backend error status", func(t *testing.T) {
				_, err := client.EmptyCall(ctx, &testpb.Empty{})
				st, _ := status.FromError(err)
				if st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "EmptyCall") {
					t.Errorf("got %v %q, want the backend's UNIMPLEMENTED", st.Code(), st.Message())
				}
			})

			t.Run("concurrent", func(t *testing.T) {
				var wg sync.WaitGroup
				errs := make(chan error, 32)
				for i := range 32 {
					wg.Go(func() {
						body := []byte(fmt.Sprintf("call %d", i))
						resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
						if err == nil && !bytes.Equal(resp.GetPayload().GetBody(), body) {
							err = fmt.Errorf("call %d echoed %q", i, resp.GetPayload().GetBody())
						}
						if err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
			})
		})
	}
}

// TestGRPCDeadline: a client's deadline passes while the backend works;
// the client sees DEADLINE_EXCEEDED and the backend's call is cancelled.
// The backend is not told the deadline (the proxy removes grpc-timeout),
// so only the proxy, or the client's reset, can end it.
func TestGRPCDeadline(t *testing.T) {
	for _, setup := range grpcSetups {
		t.Run(setup.name, func(t *testing.T) {
			svc := testenv.NewGRPCService()
			client, _, _, _, _ := startGRPCPath(t, setup, svc, true)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("stall")}})
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
			}
			select {
			case what := <-svc.Cancelled:
				if what != "unary" {
					t.Errorf("cancelled %s", what)
				}
			case <-time.After(grpcTestTimeout):
				t.Fatal("the backend's call was never cancelled")
			}
		})
	}
}

// rawGRPC sends one gRPC request with grpc-timeout timeout over x/net's
// HTTP/2 client, which has no deadline of its own, and returns the
// response with its body read: only the proxy can end it in time.
func rawGRPC(t *testing.T, addr, path, timeout string, msg []byte) (*http.Response, []byte, error) {
	t.Helper()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	frame := append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
	req, err := http.NewRequest("POST", "http://"+addr+path, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	if timeout != "" {
		req.Header.Set("Grpc-Timeout", timeout)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(grpcTestTimeout):
			tr.CloseIdleConnections()
			t.Errorf("no answer within %v", grpcTestTimeout)
		}
	}()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// grpcStatusOf returns the grpc-status of a response: in its trailers, or
// in its head for a trailers-only one.
func grpcStatusOf(resp *http.Response) string {
	if s := resp.Trailer.Get("Grpc-Status"); s != "" {
		return s
	}
	return resp.Header.Get("Grpc-Status")
}

// TestGRPCTimeoutHonoured: the proxy enforces grpc-timeout itself. Before
// the response head it answers DEADLINE_EXCEEDED; after it, it ends the
// stream with DEADLINE_EXCEEDED in the trailers. Either way the backend's
// call is cancelled, and the log says the upstream's fault, with 504 when
// the HTTP status was not sent yet (200 when it was).
func TestGRPCTimeoutHonoured(t *testing.T) {
	msgStall := []byte{0x1a, 0x07, 0x12, 0x05, 's', 't', 'a', 'l', 'l'} // payload { body: "stall" }
	// response_parameters { size: 3 }, payload { body: "stall" }
	msgStream := append([]byte{0x12, 0x02, 0x08, 0x03}, msgStall...)
	tests := []struct {
		name, path string
		msg        []byte
		wantBody   int // bytes of response body before the end
		status     int // the status logged
	}{
		{"before the head", "/grpc.testing.TestService/UnaryCall", msgStall, 0, 504},
		// One message: 5 bytes of prefix, payload { body: "ooo" }.
		{"after the head", "/grpc.testing.TestService/StreamingOutputCall", msgStream, 5 + 7, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := testenv.NewGRPCService()
			_, front, _, _, _ := startGRPCPath(t, grpcSetups[0], svc, true)
			resp, body, err := rawGRPC(t, front.plain, tc.path, "200m", tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/grpc" || grpcStatusOf(resp) != "4" {
				t.Fatalf("got %d %q grpc-status %q (%v, trailers %v), want 200 application/grpc grpc-status 4",
					resp.StatusCode, resp.Header.Get("Content-Type"), grpcStatusOf(resp), resp.Header, resp.Trailer)
			}
			if len(body) != tc.wantBody {
				t.Errorf("body of %d bytes, want %d", len(body), tc.wantBody)
			}
			select {
			case <-svc.Cancelled:
			case <-time.After(grpcTestTimeout):
				t.Fatal("the backend's call was never cancelled")
			}
			if got := front.logs.next(t); got.status != tc.status || got.grpcStatus != GRPCDeadlineExceeded || !got.grpc || got.fault != UpstreamFault {
				t.Errorf("logged %+v, want status %d, grpc status 4, upstream fault", got, tc.status)
			}
		})
	}
}

// TestGRPCBackendGoesAway: the backend stops in the middle of a stream;
// the client gets UNAVAILABLE promptly, not a hang.
func TestGRPCBackendGoesAway(t *testing.T) {
	for _, setup := range grpcSetups {
		t.Run(setup.name, func(t *testing.T) {
			client, front, backend, _, _ := startGRPCPath(t, setup, testenv.NewGRPCService(), false)
			ctx, cancel := context.WithTimeout(context.Background(), grpcTestTimeout)
			defer cancel()
			stream, err := client.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("one")}}); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			backend.Stop() // closes every connection at once
			_, err = stream.Recv()
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("after the backend stopped: %v, want UNAVAILABLE", err)
			}
			if ctx.Err() != nil {
				t.Fatal("the error came only with the test's deadline")
			}
			if got := front.logs.next(t); got.status != 200 || got.grpcStatus != GRPCUnavailable || got.fault != UpstreamFault {
				t.Errorf("logged %+v, want status 200 (the head went out), grpc status 14, upstream fault", got)
			}
		})
	}
}

// TestGRPCProxyErrors: the errors weir answers itself reach a gRPC client
// as gRPC statuses, and the logs keep the HTTP status and the fault.
func TestGRPCProxyErrors(t *testing.T) {
	tests := []struct {
		name       string
		break_     func(t *testing.T, pool *lb.LoadBalancer[*lb.RoundRobin], addr string, backend *grpc.Server)
		code       codes.Code
		httpStatus int
	}{
		{"no healthy backend", func(t *testing.T, pool *lb.LoadBalancer[*lb.RoundRobin], addr string, _ *grpc.Server) {
			if err := pool.SetEnabled(addr, false); err != nil {
				t.Fatal(err)
			}
		}, codes.Unavailable, 503},
		{"backend refuses connections", func(t *testing.T, _ *lb.LoadBalancer[*lb.RoundRobin], _ string, backend *grpc.Server) {
			backend.Stop()
		}, codes.Unavailable, 502},
	}
	for _, setup := range []grpcSetup{grpcSetups[0], grpcSetups[3]} {
		for _, tc := range tests {
			t.Run(setup.name+"/"+tc.name, func(t *testing.T) {
				client, front, backend, pool, addr := startGRPCPath(t, setup, testenv.NewGRPCService(), false)
				tc.break_(t, pool, addr, backend)
				ctx, cancel := context.WithTimeout(context.Background(), grpcTestTimeout)
				defer cancel()
				_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
				if status.Code(err) != tc.code {
					t.Fatalf("got %v, want %v", err, tc.code)
				}
				if got := front.logs.next(t); got.status != tc.httpStatus || got.grpcStatus != int(tc.code) || got.fault != UpstreamFault {
					t.Errorf("logged %+v, want status %d, grpc status %d, upstream fault", got, tc.httpStatus, tc.code)
				}
			})
		}
	}
}

// respondingProxy answers every request itself, as a routing table does
// for a path it has no route for.
type respondingProxy struct {
	status int
	body   string
}

func (p *respondingProxy) UpstreamPeer(*Session) (*Peer, error) { return nil, errors.New("unused") }

func (p *respondingProxy) RequestFilter(s *Session) (bool, error) {
	return true, s.Respond(p.status, nil, []byte(p.body))
}

// TestGRPCRespond: Session.Respond with an error status answers a gRPC
// request with the matching gRPC status and the body as its message.
func TestGRPCRespond(t *testing.T) {
	tests := []struct {
		status int
		code   codes.Code
	}{
		{404, codes.Unimplemented},
		{429, codes.ResourceExhausted},
		{503, codes.Unavailable},
		{504, codes.DeadlineExceeded},
		{401, codes.Unauthenticated},
		{403, codes.PermissionDenied},
		{400, codes.Internal},
		{500, codes.Internal},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			addr := startProxy(t, &Server{Proxy: &respondingProxy{status: tc.status, body: "no route: for\nyou 100%"}})
			client := testenv.GRPCClient(t, addr, nil)
			ctx, cancel := context.WithTimeout(context.Background(), grpcTestTimeout)
			defer cancel()
			_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			st, _ := status.FromError(err)
			if st.Code() != tc.code || st.Message() != "no route: for\nyou 100%" {
				t.Errorf("got %v %q, want %v with the body as message", st.Code(), st.Message(), tc.code)
			}
		})
	}
}

func TestParseGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1H", time.Hour, true},
		{"2M", 2 * time.Minute, true},
		{"30S", 30 * time.Second, true},
		{"250m", 250 * time.Millisecond, true},
		{"99999999u", 99999999 * time.Microsecond, true},
		{"5n", 5, true},
		{"99999999H", 1<<63 - 1, true},
		{"", 0, false},
		{"S", 0, false},
		{"100", 0, false},
		{"123456789S", 0, false},
		{"1s", 0, false},
		{"-1S", 0, false},
		{"1 S", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseGRPCTimeout([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":               true,
		"application/grpc+proto":         true,
		"application/grpc;charset=utf-8": true,
		"Application/GRPC":               true,
		"application/grpc-web":           false,
		"application/grpc-web+proto":     false,
		"application/json":               false,
		"":                               false,
	} {
		var req h1.Request
		if ct != "" {
			req.Header.Add("Content-Type", ct)
		}
		if got := isGRPC(&req); got != want {
			t.Errorf("isGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

// TestGRPCTrailersOnlyRelayed: a backend's trailers-only answer reaches
// the client as one, its status in the head and no body.
func TestGRPCTrailersOnlyRelayed(t *testing.T) {
	_, front, _, _, _ := startGRPCPath(t, grpcSetups[0], testenv.NewGRPCService(), false)
	resp, body, err := rawGRPC(t, front.plain, "/grpc.testing.TestService/EmptyCall", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "12" || len(body) != 0 || len(resp.Trailer) != 0 {
		t.Errorf("got %d, head %v, trailers %v, %d body bytes; want 200 with grpc-status 12 in the head alone",
			resp.StatusCode, resp.Header, resp.Trailer, len(body))
	}
}

// timeoutFilter is Balanced with an upstream request filter that takes
// delay (time the request spends in the proxy) and then sets grpc-timeout
// to set, or removes it for "-", or leaves it for "".
type timeoutFilter struct {
	*Balanced
	delay time.Duration
	set   string
}

func (f *timeoutFilter) UpstreamRequestFilter(s *Session, req *h1.Request) error {
	time.Sleep(f.delay)
	switch f.set {
	case "":
	case "-":
		req.Header.Del("Grpc-Timeout")
	default:
		req.Header.Set("Grpc-Timeout", f.set)
	}
	return f.Balanced.UpstreamRequestFilter(s, req)
}

// TestGRPCTimeoutForwardedIsWhatIsLeft: the grpc-timeout sent to the
// backend is the time left of the client's, not the client's whole:
// after the request spent delay in the proxy, a real gRPC backend's
// deadline is no later than the client's. A shorter timeout a filter set
// is kept; a longer one is cut to what is left; a removed one stays
// removed.
func TestGRPCTimeoutForwardedIsWhatIsLeft(t *testing.T) {
	const client = 10 * time.Second
	const delay = 300 * time.Millisecond
	tests := []struct {
		name, set string
		// The backend's time left must be in (min, max]; 0, 0: none.
		min, max time.Duration
	}{
		{"client's", "", client / 2, client - delay},
		{"shortened by a filter", "2S", time.Second, 2 * time.Second},
		{"lengthened by a filter", "1H", client / 2, client - delay},
		{"removed by a filter", "-", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, _ := testenv.GRPCBackend(t, nil, testenv.NewGRPCService(), false)
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{}, addr)
			proxy := &timeoutFilter{Balanced: &Balanced{LB: pool, Template: Peer{ALPN: ALPNH2C}}, delay: delay, set: tc.set}
			front := startProxy(t, &Server{Proxy: proxy})
			grpcClient := testenv.GRPCClient(t, front, nil)
			ctx, cancel := context.WithTimeout(context.Background(), client)
			defer cancel()
			resp, err := grpcClient.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("deadline")}})
			if err != nil {
				t.Fatal(err)
			}
			got := string(resp.GetPayload().GetBody())
			if tc.max == 0 {
				if got != "none" {
					t.Fatalf("the backend's call has %s left, want no deadline", got)
				}
				return
			}
			left, err := time.ParseDuration(got)
			if err != nil {
				t.Fatalf("the backend's call has %q left, want a deadline", got)
			}
			if left <= tc.min || left > tc.max {
				t.Fatalf("the backend's call has %v left, want more than %v and at most %v", left, tc.min, tc.max)
			}
		})
	}
}

func TestAppendGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0n"},
		{-time.Second, "0n"},
		{1, "1n"},
		{99999999, "99999999n"},
		{100000001, "100000u"}, // rounded down: never later than the deadline
		{1500 * time.Millisecond, "1500m"},
		{2 * time.Hour, "2H"},
		{90 * time.Minute, "90M"},
		{3*time.Second + 123456789, "3123456u"},
		{time.Hour + 1, "3600000m"},
		{99999999 * time.Second, "99999999S"},
		{100000000 * time.Second, "1666666M"},
		{1<<63 - 1, "2562047H"},
	}
	for _, tc := range tests {
		got := string(appendGRPCTimeout([]byte("x"), tc.in))
		if got != "x"+tc.want {
			t.Errorf("appendGRPCTimeout(%v) = %q, want %q", tc.in, got[1:], tc.want)
			continue
		}
		// What it says parses back, never later than tc.in, and less
		// than one of its unit earlier.
		d, ok := parseGRPCTimeout([]byte(tc.want))
		unit, _ := parseGRPCTimeout([]byte("1" + tc.want[len(tc.want)-1:]))
		if !ok || d > max(tc.in, 0) || tc.in-d >= unit {
			t.Errorf("%q parses as %v, %v; want at most %v and less than %v below", tc.want, d, ok, tc.in, unit)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		var buf [16]byte
		appendGRPCTimeout(buf[:0], 3*time.Second+123456789)
	}); n != 0 {
		t.Errorf("appendGRPCTimeout allocates %v times", n)
	}
}
