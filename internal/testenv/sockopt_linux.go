package testenv

import (
	"fmt"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Control runs f on c's descriptor, failing the test if it cannot or if f
// fails.
func Control(t testing.TB, c syscall.Conn, f func(fd int) error) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
}

// Sockopt reads an integer socket option of c's socket, failing the test
// if it cannot.
func Sockopt(t testing.TB, c syscall.Conn, level, opt int) int {
	t.Helper()
	var v int
	Control(t, c, func(fd int) error {
		var err error
		if v, err = unix.GetsockoptInt(fd, level, opt); err != nil {
			return fmt.Errorf("getsockopt(%d, %d): %w", level, opt, err)
		}
		return nil
	})
	return v
}

// SetSockopt sets an integer socket option of c's socket, failing the
// test if it cannot.
func SetSockopt(t testing.TB, c syscall.Conn, level, opt, value int) {
	t.Helper()
	Control(t, c, func(fd int) error { return unix.SetsockoptInt(fd, level, opt, value) })
}

// TCPInfo reads the kernel's TCP_INFO of c's socket.
func TCPInfo(t testing.TB, c syscall.Conn) *unix.TCPInfo {
	t.Helper()
	var info *unix.TCPInfo
	Control(t, c, func(fd int) error {
		var err error
		info, err = unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err
	})
	return info
}
