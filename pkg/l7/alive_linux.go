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
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		usable = rerr == unix.EAGAIN
		return true // never wait for readiness: this is a probe
	})
	return err == nil && usable
}
