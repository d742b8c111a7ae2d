package lb

import (
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// grpcHealthBackend runs a real gRPC server on ln with grpc's own health
// service (unless withHealth is false), over TLS when cfg is set. It
// stops with the test.
func grpcHealthBackend(t *testing.T, ln net.Listener, cfg *tls.Config, withHealth bool) *health.Server {
	t.Helper()
	_, hs := testenv.GRPCServe(t, ln, cfg, nil, withHealth)
	return hs
}

func TestGRPCCheck(t *testing.T) {
	ca := newTestCA(t)
	const api = "weir.test.API"
	tests := []struct {
		name       string
		tls        bool
		withHealth bool
		set        map[string]healthpb.HealthCheckResponse_ServingStatus
		check      GRPCCheck
		wantIs     error
		wantMsg    string // part of the error
	}{
		{name: "server serving, h2c", withHealth: true},
		{name: "service serving, h2c", withHealth: true, set: map[string]healthpb.HealthCheckResponse_ServingStatus{api: healthpb.HealthCheckResponse_SERVING},
			check: GRPCCheck{Service: api}},
		{name: "service not serving, h2c", withHealth: true, set: map[string]healthpb.HealthCheckResponse_ServingStatus{api: healthpb.HealthCheckResponse_NOT_SERVING},
			check: GRPCCheck{Service: api}, wantIs: ErrNotServing, wantMsg: "not serving: NOT_SERVING"},
		{name: "server not serving", withHealth: true, set: map[string]healthpb.HealthCheckResponse_ServingStatus{"": healthpb.HealthCheckResponse_NOT_SERVING},
			wantIs: ErrNotServing, wantMsg: "NOT_SERVING"},
		{name: "unknown service", withHealth: true, check: GRPCCheck{Service: "nope"}, wantIs: ErrGRPCStatus, wantMsg: "grpc status 5: unknown service"},
		{name: "no health service", withHealth: false, wantIs: ErrGRPCStatus, wantMsg: "grpc status 12: unknown service grpc.health.v1.Health"},
		{name: "service serving, TLS h2", tls: true, withHealth: true, set: map[string]healthpb.HealthCheckResponse_ServingStatus{api: healthpb.HealthCheckResponse_SERVING},
			check: GRPCCheck{Service: api, SNI: "grpc.backend"}},
		{name: "service not serving, TLS h2", tls: true, withHealth: true, set: map[string]healthpb.HealthCheckResponse_ServingStatus{api: healthpb.HealthCheckResponse_NOT_SERVING},
			check: GRPCCheck{Service: api, SNI: "grpc.backend"}, wantIs: ErrNotServing},
		{name: "TLS, wrong name", tls: true, withHealth: true, check: GRPCCheck{SNI: "other.name"}, wantMsg: "tls handshake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln := probeListener(t)
			var cfg *tls.Config
			if tc.tls {
				cfg = ca.serverConfig("grpc.backend")
				tc.check.TLS = ca.clientConfig()
			}
			hs := grpcHealthBackend(t, ln, cfg, tc.withHealth)
			for svc, st := range tc.set {
				hs.SetServingStatus(svc, st)
			}
			b := MustBackend(ln.Addr().String(), 1)
			err := checkWithin(t, t.Context(), &tc.check, &b)
			switch {
			case tc.wantIs == nil && tc.wantMsg == "":
				if err != nil {
					t.Fatalf("check failed: %v", err)
				}
			case err == nil:
				t.Fatal("check passed, want an error")
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Errorf("error %q is not %q", err, tc.wantIs)
			case !strings.Contains(err.Error(), tc.wantMsg):
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}
}

// TestGRPCCheckFollowsFlips: one check, run again as the service flips
// between SERVING and NOT_SERVING, follows it.
func TestGRPCCheckFollowsFlips(t *testing.T) {
	ln := probeListener(t)
	hs := grpcHealthBackend(t, ln, nil, true)
	b := MustBackend(ln.Addr().String(), 1)
	check := &GRPCCheck{Service: "flip"}
	for i, st := range []healthpb.HealthCheckResponse_ServingStatus{
		healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING,
		healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_SERVICE_UNKNOWN,
	} {
		hs.SetServingStatus("flip", st)
		err := checkWithin(t, t.Context(), check, &b)
		if healthy := err == nil; healthy != (st == healthpb.HealthCheckResponse_SERVING) {
			t.Errorf("step %d, %v: check said %v", i, st, err)
		}
	}
}

func TestGRPCCheckPortAndUnix(t *testing.T) {
	t.Run("port override", func(t *testing.T) {
		ln := probeListener(t)
		grpcHealthBackend(t, ln, nil, true)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		b := MustBackend("127.0.0.1:1", 1) // the service port is not the health port
		p, _ := net.LookupPort("tcp", port)
		if err := checkWithin(t, t.Context(), &GRPCCheck{Port: p}, &b); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unix socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "grpc.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		grpcHealthBackend(t, ln, nil, true)
		b := MustBackend("unix:"+path, 1)
		if err := checkWithin(t, t.Context(), &GRPCCheck{}, &b); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGRPCCheckFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln := probeListener(t)
		addr := ln.Addr().String()
		ln.Close()
		b := MustBackend(addr, 1)
		err := checkWithin(t, t.Context(), &GRPCCheck{}, &b)
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("got %v, want connection refused", err)
		}
	})
	t.Run("silent backend", func(t *testing.T) {
		// Accepts and reads, never answers: the check times out.
		ln := probeListener(t)
		// The connections close when the test ends, the accept loop's
		// with them; t.Cleanup must not be called from the loop, which
		// may outlive the test.
		var mu sync.Mutex
		var conns []net.Conn
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		b := MustBackend(ln.Addr().String(), 1)
		start := time.Now()
		err := checkWithin(t, t.Context(), &GRPCCheck{Timeout: 200 * time.Millisecond}, &b)
		if !errors.Is(err, ErrCheckTimeout) {
			t.Fatalf("got %v, want a timeout", err)
		}
		if time.Since(start) > probeHangLimit {
			t.Fatalf("the check took %v", time.Since(start))
		}
	})
	t.Run("HTTP/1.1 over TLS", func(t *testing.T) {
		ca := newTestCA(t)
		ln := tls.NewListener(probeListener(t), ca.serverConfig("grpc.backend"))
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { c.(*tls.Conn).Handshake(); c.Close() }()
			}
		}()
		b := MustBackend(ln.Addr().String(), 1)
		err := checkWithin(t, t.Context(), &GRPCCheck{TLS: ca.clientConfig(), SNI: "grpc.backend"}, &b)
		if err == nil || !strings.Contains(err.Error(), "did not negotiate h2") {
			t.Fatalf("got %v, want a refusal of a backend without h2", err)
		}
	})
}

func TestGRPCCheckValidate(t *testing.T) {
	for _, tc := range []struct {
		check GRPCCheck
		ok    bool
	}{
		{GRPCCheck{}, true},
		{GRPCCheck{Service: "a.B", Port: 9000, Timeout: time.Second}, true},
		{GRPCCheck{Port: -1}, false},
		{GRPCCheck{Port: 70000}, false},
		{GRPCCheck{Timeout: -time.Second}, false},
		{GRPCCheck{SNI: "x"}, false},
	} {
		err := tc.check.Validate()
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrBadHealthCheck) {
			t.Errorf("%+v: Validate() = %v", tc.check, err)
		}
	}
}

func TestParseHealthResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
		want int
		ok   bool
	}{
		{"serving", []byte{0, 0, 0, 0, 2, 0x08, 0x01}, grpcServing, true},
		{"empty message is UNKNOWN", []byte{0, 0, 0, 0, 0}, grpcUnknown, true},
		{"unknown fields skipped", []byte{0, 0, 0, 0, 9, 0x12, 0x02, 'h', 'i', 0x1d, 1, 2, 3, 4}, grpcUnknown, true},
		{"unknown fields then status", []byte{0, 0, 0, 0, 11, 0x12, 0x02, 'h', 'i', 0x1d, 1, 2, 3, 4, 0x08, 0x02}, grpcNotServing, true},
		{"compressed", []byte{1, 0, 0, 0, 2, 0x08, 0x01}, 0, false},
		{"short", []byte{0, 0, 0}, 0, false},
		{"length mismatch", []byte{0, 0, 0, 0, 3, 0x08, 0x01}, 0, false},
		{"truncated varint", []byte{0, 0, 0, 0, 2, 0x08, 0x80}, 0, false},
		{"string past the end", []byte{0, 0, 0, 0, 2, 0x12, 0x05}, 0, false},
		{"bad wire type", []byte{0, 0, 0, 0, 2, 0x0b, 0x01}, 0, false},
	} {
		got, err := parseHealthResponse(tc.body)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("%s: got %d, %v; want %d, ok %v", tc.name, got, err, tc.want, tc.ok)
		}
	}
	if got := grpcHealthRequest("a.B"); string(got) != "\x00\x00\x00\x00\x05\x0a\x03a.B" {
		t.Errorf("request % x", got)
	}
	if got := grpcHealthRequest(""); string(got) != "\x00\x00\x00\x00\x00" {
		t.Errorf("request for the server % x", got)
	}
}
