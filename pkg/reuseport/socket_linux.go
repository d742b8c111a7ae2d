package reuseport

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listenFirst binds the first socket of a new group, failing with
// EADDRINUSE when anything listens on addr already. SO_REUSEPORT (with
// reuse) would otherwise let this socket join another process's group on
// the address (one of the same user's, a second weir with another pin
// path) and share its connections; so an exclusive listener probes the
// address first, and the group's socket takes the port it got (port 0
// included). Without reuse the probe is the socket.
func listenFirst(network, addr string, reuse bool, keepAlive time.Duration) (*net.TCPListener, error) {
	probe, err := listen(network, addr, false, keepAlive)
	if err != nil || !reuse {
		return probe, err
	}
	bound := probe.Addr().String()
	probe.Close()
	return listen(network, bound, true, keepAlive)
}

// listen binds one listening TCP socket; with reuse, SO_REUSEPORT is set
// before bind, so that it founds or joins addr's reuseport group.
// keepAlive is the accepted connections' TCP keep-alive period (see
// Config.KeepAlive).
func listen(network, addr string, reuse bool, keepAlive time.Duration) (*net.TCPListener, error) {
	lc := net.ListenConfig{KeepAlive: keepAlive}
	// Go listens with MPTCP where the kernel has it; a REUSEPORT_SOCKARRAY
	// takes TCP and UDP sockets only (ENOTSUPP for MPTCP).
	lc.SetMultipathTCP(false)
	if reuse {
		lc.Control = setReusePort
	}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

func setReusePort(_, _ string, rc syscall.RawConn) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("set SO_REUSEPORT: %w", err)
	}
	return nil
}

// withFD runs f on ln's descriptor.
func withFD(ln *net.TCPListener, f func(fd int) error) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// cookie returns the kernel's identifier of ln's socket, which every
// duplicate of its descriptor shares and a sockarray lookup returns.
func cookie(ln *net.TCPListener) (uint64, error) {
	var c uint64
	err := withFD(ln, func(fd int) error {
		var err error
		c, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("socket cookie of %s: %w", ln.Addr(), err)
	}
	return c, nil
}

// reusePort reports whether ln has SO_REUSEPORT set: only then can more
// sockets join its address.
func reusePort(ln *net.TCPListener) bool {
	var on int
	err := withFD(ln, func(fd int) error {
		var err error
		on, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
		return err
	})
	return err == nil && on == 1
}

// detach removes any sk_reuseport program from ln's group, so that the
// kernel hashes over the group again. No program is not an error.
func detach(ln *net.TCPListener) error {
	err := withFD(ln, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0)
	})
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("detach the reuseport program of %s: %w", ln.Addr(), err)
	}
	return nil
}
