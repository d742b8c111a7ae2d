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
	forEachEngine(t, func(t *testing.T, portable bool) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				backend := startTCPBackend(t, "127.0.0.1", func(c net.Conn) { io.Copy(io.Discard, c) })
				proxy := &TCPProxy{LB: newPool(t, nil, []string{backend.addr}), IdleTimeout: tt.idle, portable: portable}
				c := dialTCP(t, serveTCP(t, proxy, "127.0.0.1"))
				if _, err := c.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
				var client, upstream int
				eventually(t, "the backend connection", func() bool {
					var ok bool
					client, upstream, ok = proxiedFds(proxy)
					return ok
				})
				for side, fd := range map[string]int{"client": client, "backend": upstream} {
					if got := keepAliveOn(t, fd); got != tt.want {
						t.Errorf("SO_KEEPALIVE on the %s side = %v, want %v", side, got, tt.want)
					}
					// Bytes leave as they arrive, whatever the idle timeout.
					if nodelay, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); err != nil || nodelay == 0 {
						t.Errorf("TCP_NODELAY on the %s side = %d (%v), want on", side, nodelay, err)
					}
				}
			})
		}
	})
}

// proxiedFds returns the descriptors of p's only connection, once its
// backend side is up, whichever path serves it.
func proxiedFds(p *TCPProxy) (client, upstream int, ok bool) {
	if client, upstream, ok = loopFds(p); ok {
		return client, upstream, true
	}
	p.init() // orders the proxy's initialisation by Serve before the read
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.mu.Lock()
		if c.upstream != nil {
			client, upstream, ok = fdOf(c.client), fdOf(c.upstream), true
		}
		c.mu.Unlock()
	}
	return client, upstream, ok
}

// fdOf returns c's descriptor, valid while c is open.
func fdOf(c net.Conn) int {
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	raw.Control(func(s uintptr) { fd = int(s) })
	return fd
}

func keepAliveOn(t *testing.T, fd int) bool {
	t.Helper()
	on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	if err != nil {
		t.Fatalf("read SO_KEEPALIVE: %v", err)
	}
	return on != 0
}
