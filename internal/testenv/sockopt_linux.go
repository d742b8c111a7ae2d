package testenv

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Sockopt reads an integer socket option of c's socket, failing the test
// if it cannot.
func Sockopt(t testing.TB, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, gerr)
	}
	return v
}
