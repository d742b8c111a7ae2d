package lb

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weir-lb/weir/internal/testenv"
	"github.com/weir-lb/weir/pkg/proxyproto"
)

// proxiedBackend is a backend that, like NGINX with listen …
// proxy_protocol, reads a PROXY header before anything else and drops a
// connection without one. Each header it reads goes to got.
func proxiedBackend(t *testing.T, got chan<- proxyproto.Header) Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testenv.AcceptEach(t, ln, func(conn net.Conn) {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		h, err := proxyproto.Read(conn)
		if err != nil {
			return
		}
		select {
		case got <- h:
		default:
		}
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return // a TCP check: nothing follows
		}
		req.Body.Close()
		_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
	})
	b, err := NewBackend(ln.Addr().String(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestChecksSendProxyProtocol: a check told to speak the PROXY protocol
// passes against a backend that requires it, announcing the connection
// as the balancer's own (v2 LOCAL, v1 UNKNOWN); without it, it fails.
func TestChecksSendProxyProtocol(t *testing.T) {
	tests := []struct {
		name    string
		check   func(v proxyproto.Version) HealthCheck
		version proxyproto.Version
		pass    bool
	}{
		{"tcp v2", func(v proxyproto.Version) HealthCheck { return &TCPCheck{ProxyProtocol: v} }, proxyproto.V2, true},
		{"tcp v1", func(v proxyproto.Version) HealthCheck { return &TCPCheck{ProxyProtocol: v} }, proxyproto.V1, true},
		{"http v2", func(v proxyproto.Version) HealthCheck { return &HTTPCheck{ProxyProtocol: v} }, proxyproto.V2, true},
		{"http v1", func(v proxyproto.Version) HealthCheck { return &HTTPCheck{ProxyProtocol: v} }, proxyproto.V1, true},
		{"http without", func(v proxyproto.Version) HealthCheck { return &HTTPCheck{ProxyProtocol: v} }, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan proxyproto.Header, 1)
			b := proxiedBackend(t, got)
			c := tc.check(tc.version)
			if cl, ok := c.(interface{ Close() error }); ok {
				defer cl.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := c.Check(ctx, &b)
			if tc.pass != (err == nil) {
				t.Fatalf("check: %v; want pass %v", err, tc.pass)
			}
			if !tc.pass {
				return
			}
			h := <-got
			if h.Version != tc.version || h.Source.IsValid() {
				t.Errorf("backend read %+v; want a version %d header without addresses", h, tc.version)
			}
			if tc.version == proxyproto.V2 && h.Command != proxyproto.Local {
				t.Errorf("command %v, want LOCAL", h.Command)
			}
		})
	}
}
