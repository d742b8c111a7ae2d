// Package lab gives tests weir's network lab: the namespaces, links and
// addresses scripts/lab creates (the one definition of the topology), and
// ways to open sockets and run commands inside them. A test calls Up, runs
// backends, weir and clients in the lab's namespaces, and the lab is torn
// down when the test ends.
package lab

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
)

// Roles are the lab's namespaces.
const (
	Client   = "client"
	Balancer = "lb"
	B1       = "b1"
	B2       = "b2"
	B3       = "b3"
)

// Backends are the backend roles in order.
var Backends = [3]string{B1, B2, B3}

// Addresses, all from documentation prefixes.
var (
	ClientAddr4 = netip.MustParseAddr("198.51.100.2")
	ClientAddr6 = netip.MustParseAddr("2001:db8:1::2")
	VIP4        = netip.MustParseAddr("192.0.2.10")
	VIP6        = netip.MustParseAddr("2001:db8:ff::10")
	// DSRVIP4 and DSRVIP6 are the VIPs of direct-server-return services
	// (examples/lab-dsr.yaml): the backends hold them, the balancer does
	// not, since it forwards the backends' answers from them to the client
	// (it is their router in the lab) and would drop packets from an
	// address of its own as martians.
	DSRVIP4 = netip.MustParseAddr("192.0.2.20")
	DSRVIP6 = netip.MustParseAddr("2001:db8:ff::20")
	// SNAT4 and SNAT6 are the balancer's addresses towards the backends.
	SNAT4 = netip.MustParseAddr("203.0.113.1")
	SNAT6 = netip.MustParseAddr("2001:db8:2::1")
)

// ClientInterface is the balancer's interface towards the client: where
// VIP traffic arrives.
const ClientInterface = "cli"

// BackendAddr4 and BackendAddr6 are backend i's (0-2) addresses.
func BackendAddr4(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(11 + i)}) }

// BackendAddr6 is backend i's (0-2) IPv6 address.
func BackendAddr6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:2::%d", 11+i))
}

// Name derives a lab name for a test: short (namespace and interface
// names are bounded), and distinct per test and per process so that
// packages testing in parallel never share a lab.
func Name(test string) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", test, os.Getpid())
	return fmt.Sprintf("wl%07x", h.Sum32()&0xfffffff)
}

// Script is the path of scripts/lab in this source tree.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "lab")
}
