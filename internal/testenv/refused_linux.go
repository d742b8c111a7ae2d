package testenv

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// RefusedAddr returns a loopback TCP address, host:port, that refuses
// every connection until the test ends. A socket bound to its port never
// listens: no listener can take the port meanwhile, as one could the
// port of a listener closed at once (a test's own next listener, or that
// of a test running beside it in another package).
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket for a refused address: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	loopback := [4]byte{127, 0, 0, 1}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback}); err != nil {
		t.Fatalf("bind a socket to 127.0.0.1 for a refused address: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("the port of a refused address: %v", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(loopback), uint16(sa.(*unix.SockaddrInet4).Port)).String()
}
