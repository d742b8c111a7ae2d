//go:build !linux

package testenv

import (
	"net"
	"testing"
)

// RefusedAddr returns a loopback TCP address, host:port, that refuses
// connections: that of a listener closed at once. (On Linux the port is
// also held until the test ends, so that no other listener takes it.)
func RefusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for a refused address: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
