package lab

import (
	"fmt"
	"net/netip"
)

// The cluster lab's roles (scripts/lab up --nodes N): a router running
// BIRD 2 in place of the balancer, and nodes n1..nN (see Node), each a
// weir announcing the VIPs to the router by BGP. Client and B1..B3 are
// the same roles as in the one-balancer lab.
const (
	Router = "router"
	// MaxNodes is the most nodes a cluster lab has.
	MaxNodes = 4
)

// Interfaces of a node: front towards the router (the VIPs' traffic and
// BGP), back towards the backends.
const (
	NodeFront = "front"
	NodeBack  = "back"
)

// Node is the role of node k (1 to MaxNodes): "n1", "n2", ...
func Node(k int) string { return fmt.Sprintf("n%d", k) }

// NodeFront4 is node k's address on the front network, its BGP session's
// source and so the next hop of its routes.
func NodeFront4(k int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(129 + k)}) }

// NodeBack4 is node k's address on the back network.
func NodeBack4(k int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + k)}) }
