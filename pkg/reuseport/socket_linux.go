package reuseport

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenFirst binds the first socket of a new group, failing with
// EADDRINUSE when anything listens on addr already. SO_REUSEPORT (with
// reuse) would otherwise let this socket join another process's group on
// the address (one of the same user's, a second weir with another pin
// path) and share its connections; so an exclusive listener probes the
// address first, and the group's socket takes the port it got (port 0
// included). Without reuse the probe is the socket.
func listenFirst(network, addr string, reuse bool, cfg Config) (*net.TCPListener, error) {
	probe, err := listen(network, addr, false, cfg)
	if err != nil || !reuse {
		return probe, err
	}
	bound := probe.Addr().String()
	probe.Close()
	return listen(network, bound, true, cfg)
}

// listen binds one listening TCP socket with cfg's options for the
// connections it accepts; with reuse, SO_REUSEPORT is set before bind,
// so that it founds or joins addr's reuseport group.
func listen(network, addr string, reuse bool, cfg Config) (*net.TCPListener, error) {
	lc := net.ListenConfig{KeepAlive: cfg.KeepAlive}
	// Go listens with MPTCP where the kernel has it; a REUSEPORT_SOCKARRAY
	// takes TCP and UDP sockets only (ENOTSUPP for MPTCP).
	lc.SetMultipathTCP(false)
	if reuse {
		lc.Control = setReusePort
	}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	ln := l.(*net.TCPListener)
	// After listen(2), which clears the socket's ACK state.
	if err := withFD(ln, func(fd int) error { return setListenerOptions(fd, cfg) }); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
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

// setListenerOptions sets on a listening socket the options that its
// accepted connections inherit from it. It must come after listen(2).
//
// With ClientSpeaksFirst, TCP_QUICKACK 0 puts the socket in delayed-ACK
// ("ping-pong") mode, which each connection it accepts starts in. A new
// connection would otherwise be in quick-ACK mode and acknowledge the
// request on its own, a segment of its own, just before the response
// that could have carried the acknowledgement: one segment in twelve of
// a connection that serves one request and closes (HAProxy does the same
// for its HTTP frontends). The kernel still acknowledges at once when
// the peer sends more than a segment ahead of the answer, and after the
// delayed-ACK timeout (at most 200 ms on Linux) when no answer comes.
func setListenerOptions(fd int, cfg Config) error {
	if !cfg.ClientSpeaksFirst {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0); err != nil {
		return fmt.Errorf("set TCP_QUICKACK: %w", err)
	}
	return nil
}

// inheritOptions sets cfg's options on sockets handed over by a
// predecessor, which may have been bound without them. It is best effort:
// an upgrade must not fail over an optimisation, and a socket that refuses
// one (an MPTCP socket has no TCP_QUICKACK) only costs its connections a
// segment each.
func inheritOptions(lns []*net.TCPListener, cfg Config) {
	for _, ln := range lns {
		withFD(ln, func(fd int) error { return setListenerOptions(fd, cfg) })
	}
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
