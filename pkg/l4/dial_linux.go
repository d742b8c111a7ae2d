package l4

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Keep-alive timing of backend connections when there is no idle
// timeout: Go's defaults, as net.Dialer would set them.
const (
	keepAliveIdle     = 15 // seconds
	keepAliveInterval = 15 // seconds
	keepAliveCount    = 9
)

// aLongTimeAgo is a deadline in the past, which wakes a waiting
// connection attempt at once.
var aLongTimeAgo = time.Unix(1, 0)

// dialBackendTCP connects to a backend at addr, an IP address and port, by
// deadline or until ctx ends, returning a connection on the runtime's
// poller. It does what net.Dialer does for one address with less: no
// address parsing or resolution, no context timer when the connection
// completes at once (on a local network it often has by the time
// connect(2) returns), no getsockname(2), and no wait when getpeername(2)
// already sees the connection up: about a dozen allocations and a park of
// the goroutine fewer per connection. keepAlive turns keep-alive probes
// on. ok is false when addr is not an IP address and port (a host name),
// for the caller to dial the usual way.
func dialBackendTCP(ctx context.Context, addr string, deadline time.Time, keepAlive bool) (conn net.Conn, ok bool, err error) {
	ap, perr := netip.ParseAddrPort(addr)
	if perr != nil || ap.Addr().Zone() != "" {
		return nil, false, nil
	}
	c, err := connectTCP(ctx, ap, deadline, keepAlive)
	if err != nil {
		return nil, true, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return c, true, nil
}

func connectTCP(ctx context.Context, ap netip.AddrPort, deadline time.Time, keepAlive bool) (*backendConn, error) {
	family, sa, salen := rawSockaddr(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := setSocketOptions(fd, keepAlive); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Raw: connect(2) on a non-blocking socket does not wait, and the
	// runtime would only hand this thread's processor to another in the
	// middle of the handshake's work (on a local network, the backend's
	// side of it runs in this call).
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(salen))
	if errno != 0 && errno != unix.EINPROGRESS && errno != unix.EINTR {
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", errno)
	}
	// A non-blocking descriptor makes a file on the runtime's poller.
	f := os.NewFile(uintptr(fd), "tcp")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	c := &backendConn{f: f, raw: raw, remote: ap}
	if err := c.awaitConnected(ctx, deadline); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

// rawSockaddr returns ap as a socket address for connect(2).
func rawSockaddr(ap netip.AddrPort) (family int, sa unix.RawSockaddrInet6, salen int) {
	if a := ap.Addr().Unmap(); a.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = a.As4()
		putPort(&sa4.Port, ap.Port())
		return unix.AF_INET, sa, unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Addr = ap.Addr().As16()
	putPort(&sa.Port, ap.Port())
	return unix.AF_INET6, sa, unix.SizeofSockaddrInet6
}

// putPort stores port in network byte order into a sockaddr's port field.
func putPort(field *uint16, port uint16) {
	p := (*[2]byte)(unsafe.Pointer(field))
	p[0], p[1] = byte(port>>8), byte(port)
}

// setSocketOptions sets what net.Dialer sets on a TCP connection:
// TCP_NODELAY, so that bytes leave as they arrive, and keep-alive probes
// when asked.
func setSocketOptions(fd int, keepAlive bool) error {
	if err := setNoDelay(fd); err != nil {
		return err
	}
	if !keepAlive {
		return nil
	}
	return setKeepAlive(fd)
}

// awaitConnected returns once the connection attempt has succeeded, or
// with why it failed. It waits on the poller only when the connection is
// not up yet, and only then arms the deadline and ctx.
func (c *backendConn) awaitConnected(ctx context.Context, deadline time.Time) error {
	var result error
	waited := false
	check := func(fd uintptr) bool {
		var rsa unix.RawSockaddrAny
		n := uint32(unsafe.Sizeof(rsa))
		_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, fd, uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
		if errno == 0 {
			return true // connected
		}
		if errno != unix.ENOTCONN {
			result = os.NewSyscallError("getpeername", errno)
			return true
		}
		// Not connected: still in progress, or failed.
		soerr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			result = os.NewSyscallError("getsockopt", err)
		case soerr != 0 && soerr != int(unix.EINPROGRESS) && soerr != int(unix.EALREADY) && soerr != int(unix.EINTR):
			result = os.NewSyscallError("connect", syscall.Errno(soerr))
		default:
			if !waited {
				waited = true
				c.armWait(ctx, deadline)
			}
			return false
		}
		return true
	}
	err := c.raw.Write(check)
	if waited {
		c.f.SetWriteDeadline(time.Time{})
		if c.stop != nil && !c.stop() && err == nil && result == nil {
			// ctx ended just as the connection came up; its callback
			// has set, or is setting, the deadline in the past.
			result = ctx.Err()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("connect: %w", os.ErrDeadlineExceeded)
		}
		return err
	}
	return result
}

// armWait bounds a connection attempt that has to wait by deadline and
// ctx: either sets a deadline in the past, which ends the wait.
func (c *backendConn) armWait(ctx context.Context, deadline time.Time) {
	c.f.SetWriteDeadline(deadline)
	if ctx.Done() != nil {
		f := c.f
		c.stop = context.AfterFunc(ctx, func() { f.SetWriteDeadline(aLongTimeAgo) })
	}
}

// backendConn is a TCP connection to a backend made by dialBackendTCP: a socket
// on the runtime's poller, through an *os.File.
type backendConn struct {
	f      *os.File
	raw    syscall.RawConn
	remote netip.AddrPort
	stop   func() bool // stops the connection attempt's ctx callback
}

var (
	_ net.Conn                        = (*backendConn)(nil)
	_ syscall.Conn                    = (*backendConn)(nil)
	_ interface{ CloseWrite() error } = (*backendConn)(nil)
)

func (c *backendConn) Read(b []byte) (int, error)  { return c.f.Read(b) }
func (c *backendConn) Write(b []byte) (int, error) { return c.f.Write(b) }
func (c *backendConn) Close() error                { return c.f.Close() }

// LocalAddr returns the connection's local address, read from the socket
// when asked (getsockname(2)), or nil when it cannot be.
func (c *backendConn) LocalAddr() net.Addr {
	var sa unix.Sockaddr
	err := c.raw.Control(func(fd uintptr) { sa, _ = unix.Getsockname(int(fd)) })
	if err != nil {
		return nil
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)))
	case *unix.SockaddrInet6:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)))
	}
	return nil
}

// RemoteAddr returns the backend's address.
func (c *backendConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

func (c *backendConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *backendConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *backendConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// SyscallConn returns the raw socket, for splice(2).
func (c *backendConn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }

// CloseWrite half-closes the connection: the backend sees the end of the
// stream, and can still send.
func (c *backendConn) CloseWrite() error {
	_, err := shutdownWrite(c)
	return err
}
