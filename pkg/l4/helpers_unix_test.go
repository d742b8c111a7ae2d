//go:build unix

package l4

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
)

// refusingAddr returns an address on host where connections are refused:
// a socket bound there but not listening. Holding the port bound, unlike
// closing a listener, keeps another test from taking it meanwhile.
func refusingAddr(t testing.TB, host string) string {
	t.Helper()
	ip := netip.MustParseAddr(host)
	family, sa := syscall.AF_INET6, syscall.Sockaddr(&syscall.SockaddrInet6{Addr: ip.As16()})
	if ip.Is4() {
		family, sa = syscall.AF_INET, &syscall.SockaddrInet4{Addr: ip.As4()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	var port int
	switch a := bound.(type) {
	case *syscall.SockaddrInet4:
		port = a.Port
	case *syscall.SockaddrInet6:
		port = a.Port
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
