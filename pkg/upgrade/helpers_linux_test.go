package upgrade

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTimeout bounds every wait of a test that is expected to succeed;
// a test that expects a timeout uses shortTimeout.
const (
	testTimeout  = 10 * time.Second
	shortTimeout = 50 * time.Millisecond
)

// socketPath is an upgrade socket path in a private directory. It is
// short, as Unix socket paths must be, unlike t.TempDir's.
func socketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "u.sock")
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// listenTCP listens on addr, with SO_REUSEPORT when reusePort.
func listenTCP(t testing.TB, addr string, reusePort bool) *net.TCPListener {
	t.Helper()
	lc := net.ListenConfig{}
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); cerr != nil {
				return cerr
			}
			return err
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func listenUDP(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// socketOf describes a listener or UDP socket for Offer, closing the
// duplicate descriptor at the end of the test.
func socketOf(t testing.TB, service string, index int, c any) Socket {
	t.Helper()
	var (
		s   Socket
		err error
	)
	switch c := c.(type) {
	case net.Listener:
		s, err = FromListener(service, c.Addr().String(), index, 0, c)
	case net.PacketConn:
		s, err = FromPacketConn(service, c.LocalAddr().String(), index, c)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.File.Close() })
	return s
}

// pendingReceive is a receive running in the background.
type pendingReceive struct {
	listening chan struct{}
	done      chan struct{}
	in        *Inheritance
	err       error
}

// receiveAsync starts receive; the test's cleanup closes what it got.
func receiveAsync(t testing.TB, ctx context.Context, path string, s settings) *pendingReceive {
	t.Helper()
	p := &pendingReceive{listening: make(chan struct{}), done: make(chan struct{})}
	s.listening = func() { close(p.listening) }
	go func() {
		defer close(p.done)
		p.in, p.err = receive(ctx, path, s)
	}()
	t.Cleanup(func() {
		<-p.done // bounded by ctx
		if p.in != nil {
			p.in.Close()
		}
	})
	return p
}

// waitListening returns once the upgrade socket accepts connections.
func (p *pendingReceive) waitListening(t testing.TB) {
	t.Helper()
	select {
	case <-p.listening:
	case <-p.done:
		t.Fatalf("receive ended before listening: %v", p.err)
	case <-time.After(testTimeout):
		t.Fatal("timed out waiting for the upgrade socket")
	}
}

// result waits for receive to return.
func (p *pendingReceive) result(t testing.TB) (*Inheritance, error) {
	t.Helper()
	await(t, p.done, "receive")
	return p.in, p.err
}

// await waits for c to deliver or close, within testTimeout.
func await[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// handoff runs a whole handoff of sockets within one process, the new
// process's side first, and returns both sides.
func handoff(t testing.TB, sockets []Socket) (*Inheritance, *Handoff) {
	t.Helper()
	ctx := testContext(t)
	path := socketPath(t)
	p := receiveAsync(t, ctx, path, defaultSettings())
	p.waitListening(t)
	h, err := Offer(ctx, path, sockets)
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	in, err := p.result(t)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return in, h
}

// checkServes checks that ln still accepts, with working deadlines: the
// socket is intact and still in non-blocking mode.
func checkServes(t testing.TB, ln *net.TCPListener) {
	t.Helper()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", ln.Addr(), err)
	}
	defer c.Close()
	ln.SetDeadline(time.Now().Add(testTimeout))
	a, err := ln.Accept()
	if err != nil {
		t.Fatalf("the old listener %s no longer accepts: %v", ln.Addr(), err)
	}
	a.Close()
	if !nonBlocking(t, ln) {
		t.Fatalf("the old listener %s was switched to blocking mode", ln.Addr())
	}
}

func nonBlocking(t testing.TB, c syscall.Conn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	rc.Control(func(fd uintptr) { flags, _ = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	return flags&unix.O_NONBLOCK != 0
}

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// readAll reads what c sends until it closes, within testTimeout.
func readAll(t testing.TB, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}
