package l7

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/lb"
)

// TestPassiveHealthOutcomes: every request's attempt reports its outcome
// to the backend that took it, once (lb.Backend.Report, through the
// Peer's copy of the Backend): a connect that fails, a reset or a
// timeout before the response head, and a 502/503/504 are gateway
// failures; another 5xx a server error; a client's fault, a gRPC
// deadline the client chose, and a response whose head arrived as 200
// report no failure.
//
// A gateway failure runs with ConsecutiveGatewayFailures 2 (and the 5xx
// rule, which counts gateway failures too, off): the first
// request must leave the backend in (one report, not two), the second
// eject it. A server error likewise with Consecutive5xx 2 (and gateway
// failures at 1, which it must not count towards). The rest run with
// both at 1: neither request may eject.
func TestPassiveHealthOutcomes(t *testing.T) {
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
	}
	h2c := func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetUnencryptedHTTP2(true)
	}
	refused := testenv.RefusedAddr(t)
	reset := rawOrigin(t, func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) })
	stall := rawOrigin(t, func(c net.Conn) { time.Sleep(time.Second) })
	cutOff := rawOrigin(t, func(c net.Conn) {
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"))
		c.(*net.TCPConn).SetLinger(0)
	})
	stallH2 := startOriginTLS(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
	}, nil, h2c)

	get := func(t *testing.T, addr string) {
		rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	}
	badChunk := func(t *testing.T, addr string) {
		rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
	}
	// The client sends part of its body, then leaves.
	leaves := func(t *testing.T, addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"))
		c.(*net.TCPConn).CloseWrite()
		var buf [512]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}
	grpcDeadline := func(t *testing.T, addr string) {
		rawGRPC(t, addr, "/test.Svc/Call", "100m", []byte("x"))
	}

	const (
		gateway = iota
		server
		none
	)
	tests := []struct {
		name    string
		backend string
		peer    Peer
		send    func(*testing.T, string)
		want    int
	}{
		{"503", startOrigin(t, status(503)).addr, Peer{}, get, gateway},
		{"502", startOrigin(t, status(502)).addr, Peer{}, get, gateway},
		{"504 over h2c", startOriginTLS(t, status(504), nil, h2c).addr, Peer{ALPN: ALPNH2C}, get, gateway},
		{"connection refused", refused, Peer{}, get, gateway},
		{"reset before the head", reset, Peer{}, get, gateway},
		{"timeout waiting for the head", stall, Peer{Timeouts: Timeouts{Read: 100 * time.Millisecond}}, get, gateway},
		{"timeout waiting for the head over h2c", stallH2.addr, Peer{ALPN: ALPNH2C, Timeouts: Timeouts{Read: 100 * time.Millisecond}}, get, gateway},
		{"500", startOrigin(t, status(500)).addr, Peer{}, get, server},
		{"501 over h2c", startOriginTLS(t, status(501), nil, h2c).addr, Peer{ALPN: ALPNH2C}, get, server},
		{"200", startOrigin(t, status(200)).addr, Peer{}, get, none},
		{"404", startOrigin(t, status(404)).addr, Peer{}, get, none},
		{"200 cut off mid-body", cutOff, Peer{}, get, none},
		{"malformed request body", stall, Peer{}, badChunk, none},
		{"client leaves mid-body", stall, Peer{}, leaves, none},
		{"grpc-timeout passes", stallH2.addr, Peer{ALPN: ALPNH2C}, grpcDeadline, none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			od := &lb.OutlierDetection{ConsecutiveGatewayFailures: 1, Consecutive5xx: 1, MaxEjectionPercent: 100, BaseEjection: time.Hour}
			switch tc.want {
			case gateway:
				od.ConsecutiveGatewayFailures, od.Consecutive5xx = 2, 0
			case server:
				od.Consecutive5xx = 2
			}
			pool := balancedPool(t, &lb.RoundRobin{}, lb.Options{Outlier: od}, tc.backend)
			logs := newSessionLog()
			addr := startProxy(t, &Server{Proxy: &loggedBalanced{Balanced: &Balanced{LB: pool, Template: tc.peer}, sessionLog: logs}})
			for i := range 2 {
				tc.send(t, addr)
				logs.next(t) // the outcome is reported before the request is logged
				ejected := pool.Status()[0].Ejected
				switch wantEjected := tc.want != none && i == 1; {
				case ejected && !wantEjected:
					t.Fatalf("ejected after request %d: %v", i+1, pool.Status()[0].LastError)
				case !ejected && wantEjected:
					t.Fatalf("not ejected after request %d", i+1)
				}
			}
		})
	}
}

// BenchmarkProxiedRequestPassiveHealth is BenchmarkProxiedRequest with
// outlier detection on: every request reports its success to the
// backend, which must cost no allocation.
func BenchmarkProxiedRequestPassiveHealth(b *testing.B) {
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	backend := &Server{Proxy: &Respond{Status: 200, Body: []byte("ok\n")}}
	go backend.Serve(bl)
	b.Cleanup(func() { backend.Close() })
	pool := balancedPool(b, &lb.RoundRobin{}, lb.Options{Outlier: &lb.OutlierDetection{Consecutive5xx: 5}}, bl.Addr().String())
	benchProxied(b, &Balanced{LB: pool}, benchRequest)
}
