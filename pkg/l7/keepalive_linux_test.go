package l7

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/weir-lb/weir/internal/testenv"
	"golang.org/x/sys/unix"
)

// A client connection that becomes a tunnel gets TCP keep-alive probes,
// even when its listener turned them off, whether or not TLS wraps it.
func TestTunnelProbesItsClient(t *testing.T) {
	tests := []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"plain TCP", func(c net.Conn) net.Conn { return c }},
		{"TLS", func(c net.Conn) net.Conn { return tls.Server(c, &tls.Config{}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := acceptedWithoutProbes(t)
			if got := testenv.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != 0 {
				t.Fatalf("before: SO_KEEPALIVE %d, want 0 (the listener turned probes off)", got)
			}
			probeIdlePeer(tc.wrap(c))
			if got := testenv.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_KEEPALIVE); got != 1 {
				t.Errorf("SO_KEEPALIVE %d, want 1", got)
			}
			if got := testenv.Sockopt(t, c, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE); got != 15 {
				t.Errorf("TCP_KEEPIDLE %d s, want 15", got)
			}
			if got := testenv.Sockopt(t, c, unix.IPPROTO_TCP, unix.TCP_KEEPCNT); got != 9 {
				t.Errorf("TCP_KEEPCNT %d, want 9", got)
			}
		})
	}
}

// acceptedWithoutProbes returns the server side of a loopback connection
// accepted by a listener that turns keep-alive probes off.
func acceptedWithoutProbes(t *testing.T) *net.TCPConn {
	t.Helper()
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}
