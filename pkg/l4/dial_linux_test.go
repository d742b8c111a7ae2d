package l4

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The proxy's own dialer connects over IPv4 and IPv6, and the connection
// reads, writes, half-closes and names both ends like a *net.TCPConn.
func TestDialBackendTCP(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			got := make(chan []byte, 1)
			backend := startTCPBackend(t, host, func(c net.Conn) {
				c.Write([]byte("hello"))
				b, _ := io.ReadAll(c) // to the client's half-close
				got <- b
			})
			conn, ok, err := dialBackendTCP(context.Background(), backend.addr, time.Now().Add(testTimeout), false)
			if !ok || err != nil {
				t.Fatalf("dialBackendTCP(%s) = %v, %v; want a connection", backend.addr, ok, err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(testTimeout))
			if got, want := conn.RemoteAddr().String(), backend.addr; got != want {
				t.Errorf("RemoteAddr = %s, want %s", got, want)
			}
			local := addrPortOf(conn.LocalAddr())
			if local.Addr() != netip.MustParseAddr(host) || local.Port() == 0 {
				t.Errorf("LocalAddr = %v, want %s and a port", conn.LocalAddr(), host)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("read %q, %v; want hello", buf, err)
			}
			conn.Write([]byte("bye"))
			if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if b := <-got; string(b) != "bye" {
				t.Errorf("backend read %q up to the half-close, want bye", b)
			}
		})
	}
}

func TestDialBackendTCPFailures(t *testing.T) {
	refused := closedPort(t)
	full := fullListener(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		addr     string
		deadline time.Duration
		notOurs  bool  // a host name: left to net.Dialer
		want     error // errors.Is
	}{
		{name: "host name", addr: "localhost:80", notOurs: true},
		{name: "IPv6 zone", addr: "[fe80::1%lo]:80", notOurs: true},
		{name: "refused", addr: refused, want: syscall.ECONNREFUSED},
		// The SYN to a listener whose accept queue is full is dropped:
		// the attempt waits until its deadline, or ctx's end.
		{name: "deadline", addr: full, deadline: 50 * time.Millisecond, want: os.ErrDeadlineExceeded},
		{name: "cancelled", ctx: cancelled, addr: full, deadline: testTimeout, want: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			conn, ok, err := dialBackendTCP(ctx, tc.addr, time.Now().Add(tc.deadline), false)
			if conn != nil {
				conn.Close()
			}
			if ok == tc.notOurs {
				t.Fatalf("dialBackendTCP(%s) handled = %v, want %v", tc.addr, ok, !tc.notOurs)
			}
			if tc.notOurs {
				return
			}
			if conn != nil || !errors.Is(err, tc.want) {
				t.Errorf("dialBackendTCP(%s) = %v, %v; want no connection and %v", tc.addr, conn, err, tc.want)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// fullListener returns the address of a loopback listener whose accept
// queue is full and never drains, so that a further SYN is dropped.
func fullListener(t *testing.T) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port)).String()
	// A backlog of 0 queues one connection; fill it, and the SYN queue,
	// with connections that complete.
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break // full already
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}
