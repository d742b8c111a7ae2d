//go:build unix

package l4

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// Keep-alive probes run on both of a connection's sockets when it has no
// idle timeout, the only way to find a vanished peer then, and on neither
// when the idle watchdog would reap it (four setsockopt calls a socket
// saved).
func TestTCPKeepAlive(t *testing.T) {
	tests := []struct {
		name string
		idle time.Duration
		want bool
	}{
		{name: "default idle timeout", idle: 0, want: false},
		{name: "idle timeout set", idle: time.Minute, want: false},
		{name: "no idle timeout", idle: -1, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend := startTCPBackend(t, "127.0.0.1", func(c net.Conn) { io.Copy(io.Discard, c) })
			proxy := &TCPProxy{LB: newPool(t, nil, []string{backend.addr}), IdleTimeout: tt.idle}
			c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			var client, upstream net.Conn
			eventually(t, "the backend connection", func() bool {
				client, upstream = proxiedSockets(proxy)
				return upstream != nil
			})
			for side, conn := range map[string]net.Conn{"client": client, "backend": upstream} {
				if got := keepAliveOn(t, conn); got != tt.want {
					t.Errorf("SO_KEEPALIVE on the %s side = %v, want %v", side, got, tt.want)
				}
			}
		})
	}
}

// proxiedSockets returns the two sockets of p's only connection; upstream
// is nil until the backend connection is made.
func proxiedSockets(p *TCPProxy) (client, upstream net.Conn) {
	p.init() // orders the proxy's initialisation by Serve before the read
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.mu.Lock()
		client, upstream = c.client, c.upstream
		c.mu.Unlock()
	}
	return client, upstream
}

func keepAliveOn(t *testing.T, c net.Conn) bool {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil || serr != nil {
		t.Fatalf("read SO_KEEPALIVE: %v, %v", err, serr)
	}
	return on != 0
}
