package l7

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// alive reports whether an idle connection can still be used. An idle
// upstream sends nothing, so readable data or EOF both mean it is going
// away. It peeks without blocking: one system call, no read consumed.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	usable := false
	err = raw.Read(func(fd uintptr) bool {
		_, perr := peek(int(fd))
		usable = perr == unix.EAGAIN
		return true // never wait for readiness: this is a probe
	})
	return err == nil && usable
}

// peek looks at socket fd without blocking and without consuming
// anything: n is 1 when input is waiting and 0 at EOF, and err is
// unix.EAGAIN when there is neither.
func peek(fd int) (n int, err error) {
	var b [1]byte
	for {
		n, _, err = unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// canWaitReadable reports whether waitReadable can wait on c without a
// buffer: c must expose its socket.
func canWaitReadable(c net.Conn) bool {
	_, ok := c.(syscall.Conn)
	return ok
}

// waitReadable blocks until c has input (or EOF, or an error) to read,
// under c's read deadline, without reading it and without a buffer: an
// idle keep-alive connection waits here holding no memory for its next
// request. Each check is a one-byte non-blocking peek.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return raw.Read(func(fd uintptr) bool {
		_, err := peek(int(fd))
		return err != unix.EAGAIN
	})
}
